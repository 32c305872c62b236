"""The Colab badges and install cells follow the one repository setting in pyproject.toml."""

import importlib.util
import shutil

import pytest
from conftest import NOTEBOOK_DIR, ROOT

from dnolab.notebooks import find_notebooks

_spec = importlib.util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
set_repository = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(set_repository)

SETTING = set_repository.load_setting()
NOTEBOOKS = find_notebooks(NOTEBOOK_DIR)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_badge_and_install_cell_agree_with_the_setting(path):
    problems = set_repository.notebook_problems(path, SETTING)
    assert not problems, f"{path.name}: {problems}; run `python scripts/set_repository.py`"


def test_readme_colab_links_agree_with_the_setting():
    assert not set_repository.readme_problems(ROOT / "README.md", SETTING)


def _copy_project(tmp_path, repository, branch):
    (tmp_path / "notebooks").mkdir()
    for path in NOTEBOOKS[:2]:
        shutil.copy(path, tmp_path / "notebooks" / path.name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.dnolab]\nrepository = "{repository}"\nbranch = "{branch}"\n')
    return sorted((tmp_path / "notebooks").iterdir())


def test_the_script_moves_every_link_and_nothing_else(tmp_path):
    copies = _copy_project(tmp_path, "someone/dno-fork", "v0.2")
    before = {p: p.read_text() for p in copies}
    assert set_repository.main(["--root", str(tmp_path), "--check"]) == 1  # they disagree now
    assert set_repository.main(["--root", str(tmp_path), "--readme"]) == 0
    setting = {"repository": "someone/dno-fork", "branch": "v0.2"}
    for path in copies:
        text = path.read_text()
        assert not set_repository.notebook_problems(path, setting)
        assert "colab.research.google.com/github/someone/dno-fork/blob/v0.2/notebooks/" \
               f"{path.name}" in text
        assert "dnolab @ git+https://github.com/someone/dno-fork@v0.2" in text
        # only the URLs changed: undoing the two substitutions gives back the original text
        undone = text.replace("someone/dno-fork/blob/v0.2", "dnolab/dnolab/blob/main")
        undone = undone.replace("someone/dno-fork@v0.2", "dnolab/dnolab")
        assert undone == before[path]
    assert "someone/dno-fork/blob/v0.2/notebooks/05_" in (tmp_path / "README.md").read_text()
    again = {p: p.read_text() for p in copies}
    assert set_repository.main(["--root", str(tmp_path), "--readme"]) == 0
    assert again == {p: p.read_text() for p in copies}, "a second run must change nothing"


def test_a_bad_setting_is_refused_with_a_clear_error(tmp_path):
    _copy_project(tmp_path, "not a repo", "main")
    with pytest.raises(SystemExit, match="owner/name"):
        set_repository.main(["--root", str(tmp_path)])
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(SystemExit, match=r"no \[tool.dnolab\]"):
        set_repository.main(["--root", str(tmp_path)])
