"""One figure style for the series and a ``save_fig`` whose files are byte-identical on re-runs.

Figures are committed under ``figures/NN_stem/``; deterministic bytes keep ``git status``
clean after ``make run`` regenerates them. A smoke run never writes there:
``set_figure_dir(FIG_DIR, smoke=SMOKE)`` sends it to ``build/smoke/figures/NN_stem``.
The shared helpers keep figures alike across notebooks: :func:`heatmap` (a matrix with
per-cell values and tick labels), :data:`METHOD_COLORS` / :func:`method_color` (one colour
per method in every notebook) and :func:`label_line_ends` (labels at the end of the lines
instead of a legend over the data). Introduced in notebooks/01_bradley_terry_limits.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib as mpl

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # green
    "#CC79A7",  # purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",
)

STYLE = {
    "figure.figsize": (5.0, 3.2),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "image.cmap": "RdBu_r",
    # Fixed salt and no timestamps: SVG ids and PNG metadata do not change between runs.
    "svg.hashsalt": "dnolab",
    "svg.fonttype": "path",
}

_figure_dir: Path | None = None


def use_style() -> None:
    """Apply the series' matplotlib style (idempotent)."""
    mpl.rcParams.update(STYLE)


def smoke_figure_dir(path: str | os.PathLike) -> Path:
    """Where a smoke run's figures go instead of ``path``.

    A folder directly inside a folder named ``figures`` (the committed ``figures/NN_stem``)
    maps to ``build/smoke/figures/NN_stem`` next to that ``figures`` folder; a folder under
    a ``build`` folder (the runner already passes ``build/smoke/figures/NN_stem``) and any
    other folder are kept as they are.
    """
    folder = Path(path).resolve()
    if folder.parent.name == "figures" and "build" not in folder.parent.parts:
        return folder.parent.parent / "build" / "smoke" / "figures" / folder.name
    return folder


def set_figure_dir(path: str | os.PathLike, smoke: bool = False) -> Path:
    """Set where :func:`save_fig` writes and return it; notebooks pass ``FIG_DIR`` and ``SMOKE``.

    With ``smoke=True`` a committed ``figures/NN_stem`` folder is replaced by
    ``build/smoke/figures/NN_stem`` (see :func:`smoke_figure_dir`), so a notebook run by hand
    in smoke mode with the default ``FIG_DIR`` never overwrites the full-mode figures.
    """
    global _figure_dir
    target = smoke_figure_dir(path) if smoke else Path(path)
    if smoke and target != Path(path).resolve():
        print(f"smoke run: figures go to {target}, not to the committed {Path(path)}")
    _figure_dir = target
    return _figure_dir


def save_fig(fig, name: str, directory: str | os.PathLike | None = None,
             formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``<directory>/<name>.png`` and ``.svg`` with no timestamps or tool versions.

    Each file is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written figure behind.
    """
    if not name or os.sep in name or (os.altsep and os.altsep in name) or "." in name:
        raise ValueError(
            f"figure name must be a plain stem like 'bt_recovery' (no folders or extension), got {name!r}"
        )
    target = Path(directory) if directory is not None else _figure_dir
    if target is None:
        raise RuntimeError("no figure folder: call set_figure_dir(FIG_DIR) or pass directory=")
    target.mkdir(parents=True, exist_ok=True)
    metadata = {
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
        "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    }
    written = []
    for fmt in formats:
        if fmt not in metadata:
            raise ValueError(f"unsupported figure format {fmt!r}; use one of {sorted(metadata)}")
        path = target / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{fmt}", dir=target)
        os.close(fd)
        try:
            fig.savefig(tmp, format=fmt, metadata=metadata[fmt])
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; figures are ordinary shared files
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    return written


# One colour per method in every notebook (03's dynamics, 04's loop, 05's comparison).
# DNO variants are blues and green, the peers warm colours, the references black and grey.
METHOD_COLORS: dict[str, str] = {
    "dno_prct": "#0072B2",  # blue: DNO-Prct, the method the series builds
    "dno_alg1": "#56B4E9",  # sky blue: DNO's soft-label Algorithm 1
    "dno_restrictive": "#332288",  # indigo: T≻S pairs only
    "dno_regularized": "#009E73",  # green: reference and samples from a mixture
    "spin": "#CC79A7",  # reddish purple
    "sppo": "#E69F00",  # orange
    "iterative_dpo": "#D55E00",  # vermillion: the recipe (other variants share it: iterative_dpo_*)
    "iterative_dpo_ref": "#F4A582",  # salmon: one change, the reference stays π₁
    "iterative_dpo_ranker": "#8C510A",  # brown: one change, a BT reward model ranks
    "iterative_dpo_ref_ranker": "#B2182B",  # dark red: both changes
    "offline_dpo": "#882255",  # wine
    "sft_gold": "#999933",  # olive: continued SFT on the gold answers
    "teacher": "#000000",  # black: the teacher (or any fixed reference to beat)
    "sft_start": "#7F7F7F",  # grey: π₁, the SFT policy every method starts from
}


def _method_key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def method_color(name: str) -> str:
    """The colour of method ``name`` from :data:`METHOD_COLORS`.

    Names are matched case-insensitively with spaces and hyphens read as underscores
    ("SFT start" is ``sft_start``); a variant such as ``iterative_dpo_fixed_rm`` takes the
    colour of the longest method name it starts with.
    """
    key = _method_key(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    prefixes = [m for m in METHOD_COLORS if key.startswith(m + "_")]
    if prefixes:
        return METHOD_COLORS[max(prefixes, key=len)]
    raise KeyError(f"no colour for method {name!r}; known methods: {sorted(METHOD_COLORS)} "
                   "(a variant must start with one of them followed by '_')")


def _text_color(rgba) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba`` (WCAG luminance)."""
    def channel(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # contrast with black (L + 0.05) / 0.05 against white 1.05 / (L + 0.05): equal at L ≈ 0.179
    return "black" if luminance > 0.179 else "white"


def _tick_labels(labels, n: int):
    if labels is False:
        return None
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"expected {n} tick labels, got {len(labels)}")
    return labels


def heatmap(ax, M, row_labels=None, col_labels=None, *, annotate=None, fmt=".2f",
            vmin: float = 0.0, vmax: float = 1.0, cmap=None, colorbar: bool = False,
            cbar_label: str | None = None, fontsize: float | None = None,
            tick_fontsize: float | None = None, xlabel: str | None = None,
            ylabel: str | None = None, title: str | None = None, mark=None,
            mark_label: str | None = None):
    """Draw matrix ``M`` on ``ax`` the series' way and return the image.

    No spines or grid; a tick label for every row and column (``None``: the indices
    0..n-1, a list: those labels, for instance the original indices of a sorted matrix,
    ``False``: no ticks); per-cell values written with ``fmt`` (a format spec or a
    function) in black or white, whichever reads better on the cell. ``annotate=None``
    writes values only when the matrix is at most 8×8 (they do not fit in smaller cells).
    ``colorbar=True`` adds a colour bar labelled ``cbar_label`` beside this axes. ``mark``, a
    boolean matrix of the same shape, puts a small × on those cells (in the readable colour),
    labelled ``mark_label`` for a legend.
    """
    import numpy as np

    M = np.asarray(M, dtype=float)
    if M.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix, got shape {M.shape}")
    n_rows, n_cols = M.shape
    im = ax.imshow(M, vmin=vmin, vmax=vmax, cmap=cmap, interpolation="nearest")
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0, labelsize=tick_fontsize)
    rows, cols = _tick_labels(row_labels, n_rows), _tick_labels(col_labels, n_cols)
    ax.set_yticks(range(n_rows) if rows else [], rows or [])
    ax.set_xticks(range(n_cols) if cols else [], cols or [])
    widest = max((len(c) for c in cols), default=0) if cols else 0
    if widest * n_cols > 24:  # the column labels would run into each other: turn them
        if widest <= 3:
            ax.tick_params(axis="x", labelrotation=90)
        else:
            ax.tick_params(axis="x", labelrotation=45)
            for label in ax.get_xticklabels():
                label.set_ha("right")
                label.set_rotation_mode("anchor")
    if annotate is None:
        annotate = max(n_rows, n_cols) <= 8
    if annotate:
        size = fontsize if fontsize is not None else (8 if max(n_rows, n_cols) <= 5 else 7)
        for i in range(n_rows):
            for j in range(n_cols):
                value = M[i, j]
                if not np.isfinite(value):
                    continue
                text = fmt(value) if callable(fmt) else format(value, fmt)
                ax.text(j, i, text, ha="center", va="center", fontsize=size,
                        color=_text_color(im.cmap(im.norm(value))))
    if mark is not None:
        mark = np.asarray(mark, dtype=bool)
        if mark.shape != M.shape:
            raise ValueError(f"mark has shape {mark.shape}, the matrix {M.shape}")
        rows_marked, cols_marked = np.nonzero(mark)
        colors = [_text_color(im.cmap(im.norm(M[i, j]))) for i, j in zip(rows_marked, cols_marked, strict=True)]
        ax.scatter(cols_marked, rows_marked, marker="x", s=12 if max(n_rows, n_cols) > 8 else 30,
                   linewidths=0.8, c=colors, label=mark_label)
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(n_rows - 0.5, -0.5)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85, label=cbar_label)
    return im


def label_line_ends(ax, lines=None, labels=None, *, min_gap: float = 0.06, pad: float = 0.02,
                    fontsize: float | None = None):
    """Write each line's label just right of the axes, level with the line's last point.

    Replaces a legend that would sit over the data. ``lines`` defaults to the labelled
    lines of ``ax``, ``labels`` to their labels; labels closer than ``min_gap`` (a fraction
    of the axes height) are pushed apart. Call it after the limits and scales are final.
    Returns the text annotations.
    """
    import numpy as np

    if lines is None:
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    lines = list(lines)
    labels = [ln.get_label() for ln in lines] if labels is None else list(labels)
    if len(labels) != len(lines):
        raise ValueError(f"{len(lines)} lines but {len(labels)} labels")
    if not lines:
        return []
    to_axes = ax.transAxes.inverted()
    ends = []
    for ln in lines:
        x, y = (np.asarray(v, dtype=float) for v in ln.get_data())
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.any():
            raise ValueError(f"line {ln.get_label()!r} has no finite point to label")
        xy = (x[keep][-1], y[keep][-1])
        ends.append((xy, to_axes.transform(ax.transData.transform(xy))[1]))
    order = np.argsort([frac for _, frac in ends])
    placed = np.array([ends[i][1] for i in order], dtype=float)
    for k in range(1, len(placed)):  # push up whatever sits too close to the label below
        placed[k] = max(placed[k], placed[k - 1] + min_gap)
    overflow = placed[-1] - 1.0
    if overflow > 0:  # then shift the stack down, keeping the gaps, as far as the bottom allows
        placed -= min(overflow, max(placed[0], 0.0))
    texts = [None] * len(lines)
    for rank, i in enumerate(order):
        ln = lines[i]
        texts[i] = ax.annotate(labels[i], xy=ends[i][0], xycoords="data",
                               xytext=(1.0 + pad, placed[rank]), textcoords="axes fraction",
                               color=ln.get_color(), va="center", ha="left", fontsize=fontsize,
                               annotation_clip=False)
    return texts
