"""One figure style for the series and a ``save_fig`` whose files are byte-identical on re-runs.

Figures are committed under ``figures/NN_stem/``; deterministic bytes keep ``git status``
clean after ``make run`` regenerates them. Introduced in notebooks/01_bradley_terry_limits.
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


def set_figure_dir(path: str | os.PathLike) -> Path:
    """Set where :func:`save_fig` writes; notebooks call it with their ``FIG_DIR`` parameter."""
    global _figure_dir
    _figure_dir = Path(path)
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
