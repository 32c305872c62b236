import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from conftest import NOTEBOOK_DIR, ROOT

from dnolab import plotting
from dnolab.notebooks import find_notebooks
from dnolab.plotting import (
    METHOD_COLORS,
    _text_color,
    heatmap,
    label_line_ends,
    method_color,
    save_fig,
    set_figure_dir,
    smoke_figure_dir,
    use_style,
)


def _draw(seed):
    use_style()
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots()
    ax.plot(rng.standard_normal(50).cumsum(), label="walk")
    ax.imshow(rng.random((4, 4)), extent=(0, 10, 0, 2), alpha=0.3)
    ax.legend()
    ax.set_title("determinism")
    return fig


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_fig_is_byte_identical_on_rerun(tmp_path):
    first = save_fig(_draw(0), "walk", directory=tmp_path / "a")
    second = save_fig(_draw(0), "walk", directory=tmp_path / "b")
    assert [p.suffix for p in first] == [".png", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert _digest(a) == _digest(b), f"{a.name} differs between runs"
    # a different figure really gives different bytes (the check can fail)
    third = save_fig(_draw(1), "walk", directory=tmp_path / "c")
    assert _digest(first[0]) != _digest(third[0])
    plt.close("all")


def test_save_fig_uses_the_figure_dir_and_leaves_no_temp_files(tmp_path):
    set_figure_dir(tmp_path)
    save_fig(_draw(0), "walk")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.png", "walk.svg"]
    plt.close("all")


@pytest.mark.parametrize("name", ["", "a/b", "x.png"])
def test_bad_figure_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="plain stem"):
        save_fig(plt.figure(), name, directory=tmp_path)
    plt.close("all")


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        save_fig(plt.figure(), "x", directory=tmp_path, formats=("bmp",))
    assert not any(tmp_path.iterdir())
    plt.close("all")


# --- smoke runs never write into the committed figures/ ------------------------------------

def test_smoke_run_with_a_committed_figure_folder_is_redirected_to_build(tmp_path):
    committed = tmp_path / "figures" / "01_demo"
    target = set_figure_dir(committed, smoke=True)
    assert target == tmp_path / "build" / "smoke" / "figures" / "01_demo"
    save_fig(_draw(0), "walk")
    assert (target / "walk.png").exists()
    assert not committed.exists(), "a smoke run wrote into the committed figures folder"
    plt.close("all")


def test_full_runs_and_folders_outside_figures_are_kept(tmp_path):
    committed = tmp_path / "figures" / "01_demo"
    assert set_figure_dir(committed) == committed  # full mode writes the committed figures
    runner_dir = tmp_path / "build" / "smoke" / "figures" / "01_demo"  # what the runner passes
    assert set_figure_dir(runner_dir, smoke=True) == runner_dir
    assert smoke_figure_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def _setup_cells(notebook):
    """The code cells up to and including the one after the `parameters` cell."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return [c.source for c in cells[: index + 2]]


# Notebooks that route their figures through set_figure_dir(FIG_DIR, smoke=SMOKE); add each
# notebook here once its config cell does.
ROUTED = ["01", "02"]


@pytest.mark.parametrize("prefix", ROUTED)
def test_a_notebook_run_by_hand_in_smoke_mode_keeps_out_of_figures(prefix, monkeypatch):
    """Run the notebook's set-up as a person would (its folder as cwd, default FIG_DIR), SMOKE on."""
    notebook = find_notebooks(NOTEBOOK_DIR, [prefix])[0]
    monkeypatch.chdir(notebook.parent)
    namespace = {}
    for source in _setup_cells(notebook):
        source = source.replace("SMOKE = False", "SMOKE = True")
        exec(compile(source, str(notebook), "exec"), namespace)
    assert namespace["SMOKE"] is True
    target = plotting._figure_dir.resolve()
    committed = (ROOT / "figures").resolve()
    assert committed not in target.parents, f"smoke figures would go to {target}"
    assert target == ROOT / "build" / "smoke" / "figures" / notebook.stem
    plt.close("all")


# --- heatmap ------------------------------------------------------------------------------

def test_heatmap_labels_every_cell_in_a_readable_colour():
    use_style()
    fig, ax = plt.subplots()
    M = np.array([[0.5, 0.02, 0.98], [0.98, 0.5, 0.02], [0.02, 0.98, 0.5]])
    im = heatmap(ax, M, row_labels=list("RPS"), col_labels=list("RPS"), colorbar=True,
                 cbar_label="P(i ≻ j)")
    texts = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert len(texts) == 9
    assert texts[((1, 0), "0.02")] == "white"  # dark blue cell
    assert texts[((2, 0), "0.98")] == "white"  # dark red cell
    assert texts[((0, 0), "0.50")] == "black"  # near-white cell
    assert [t.get_text() for t in ax.get_yticklabels()] == list("RPS")
    assert not any(s.get_visible() for s in ax.spines.values())
    assert len(fig.axes) == 2, "colorbar=True adds a colour bar"
    assert fig.axes[1].get_ylabel() == "P(i ≻ j)"
    assert im.get_clim() == (0.0, 1.0)
    plt.close(fig)


def test_heatmap_defaults_to_index_ticks_and_no_values_on_large_matrices():
    fig, ax = plt.subplots()
    heatmap(ax, np.random.default_rng(0).random((20, 20)))
    assert not ax.texts, "20×20 cells are too small for values"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(20)]
    heatmap(ax, np.eye(3), row_labels=False, col_labels=False, fmt=lambda v: f"{v:.0%}")
    assert not ax.get_yticks().size and [t.get_text() for t in ax.texts][:2] == ["100%", "0%"]
    plt.close(fig)


def test_heatmap_marks_the_chosen_cells():
    fig, ax = plt.subplots()
    M = np.full((10, 10), 0.5)
    mask = np.zeros((10, 10), dtype=bool)
    mask[2, 7] = mask[9, 0] = True
    heatmap(ax, M, mark=mask, mark_label="backwards")
    (marks,) = ax.collections
    assert sorted(map(tuple, marks.get_offsets().tolist())) == [(0.0, 9.0), (7.0, 2.0)]  # (col, row)
    assert marks.get_label() == "backwards"
    assert ax.get_ylim() == (9.5, -0.5), "row 0 stays on top"
    with pytest.raises(ValueError, match="mark has shape"):
        heatmap(ax, M, mark=mask[:3])
    plt.close(fig)


def test_heatmap_refuses_bad_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="3 tick labels"):
        heatmap(ax, np.eye(3), row_labels=["a", "b"])
    with pytest.raises(ValueError, match="2-D"):
        heatmap(ax, np.ones(3))
    plt.close(fig)


def test_text_colour_switches_at_equal_contrast():
    assert _text_color((1.0, 1.0, 1.0)) == "black" and _text_color((0.0, 0.0, 0.0)) == "white"
    assert _text_color((0.5, 0.5, 0.5)) == "black"  # luminance 0.214 > 0.179
    assert _text_color((0.4, 0.4, 0.4)) == "white"  # luminance 0.133


# --- method colours -------------------------------------------------------------------------

def test_every_method_has_its_own_colour_and_variants_share_it():
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)
    from dnolab.lm.methods import METHODS

    assert set(METHODS) <= set(METHOD_COLORS), "a method of dnolab.lm.methods has no colour"
    assert method_color("iterative_dpo_fixed_rm") == METHOD_COLORS["iterative_dpo"]
    assert method_color("SFT start") == METHOD_COLORS["sft_start"]
    assert method_color("DNO-Prct") == METHOD_COLORS["dno_prct"]
    with pytest.raises(KeyError, match="known methods"):
        method_color("dnoprct")


# --- labels at the line ends ----------------------------------------------------------------

def test_line_end_labels_sit_at_the_lines_and_do_not_overlap():
    use_style()
    fig, ax = plt.subplots()
    x = np.arange(10)
    ax.plot(x, 0.50 + 0.0 * x, label="a")
    ax.plot(x, 0.51 + 0.0 * x, label="b")  # ends almost where "a" ends
    ax.plot(x, 0.9 * x / 9, label="c")
    ax.plot(x, x, label="_hidden")
    ax.set_ylim(0, 1)
    texts = label_line_ends(ax, min_gap=0.08)
    assert [t.get_text() for t in texts] == ["a", "b", "c"]
    assert [t.get_color() for t in texts] == [ln.get_color() for ln in ax.get_lines()[:3]]
    heights = sorted(t.xyann[1] for t in texts)
    assert np.all(np.diff(heights) >= 0.08 - 1e-12), heights
    assert texts[2].xyann[1] == pytest.approx(0.9)  # far from the others: level with its line
    assert all(t.xyann[0] > 1 for t in texts), "labels sit right of the axes"
    with pytest.raises(ValueError, match="3 lines but 2 labels"):
        label_line_ends(ax, ax.get_lines()[:3], ["a", "b"])
    plt.close(fig)
