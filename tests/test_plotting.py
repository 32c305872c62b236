import hashlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from dnolab.plotting import save_fig, set_figure_dir, use_style


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
