"""The runtimes the README and the notebooks state come from `make run` and agree."""

import importlib.util

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("runtimes", ROOT / "scripts" / "runtimes.py")
runtimes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtimes)


@pytest.mark.parametrize(("seconds", "text"), [(3, "5 s"), (9.4, "10 s"), (57, "55 s"), (58, "1 min"),
                                               (84, "1.5 min"), (100, "1.5 min"), (585, "10 min"),
                                               (782, "15 min"), (1500, "25 min")])
def test_seconds_become_a_rounded_phrase(seconds, text):
    assert runtimes.phrase(seconds) == text


def test_readme_and_notebooks_state_the_same_runtimes():
    assert runtimes.disagreements() == []
    assert set(runtimes.notebook_phrases()) == set(runtimes.readme_phrases())


def test_write_takes_the_runners_report(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("| # | notebook | what | laptop CPU (2 cores) | Colab |\n|---|---|---|---|---|\n"
                      "| 01 | [x](notebooks/01_x.ipynb) | y | 5 s | badge |\n")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_x.ipynb").write_text('{"source": "**Runtime**: about 5 s on a 2-core laptop CPU."}')
    report = tmp_path / "report.json"
    report.write_text('[{"notebook": "01_x.ipynb", "status": "ok", "seconds": 83.0}]')
    monkeypatch.setattr(runtimes, "README", readme)
    monkeypatch.setattr(runtimes, "NOTEBOOKS", notebooks)
    runtimes.write(report)
    assert "| 01 | [x](notebooks/01_x.ipynb) | y | 1.5 min | badge |" in readme.read_text()
    assert "about 1.5 min on a 2-core laptop CPU" in (notebooks / "01_x.ipynb").read_text()
    assert runtimes.disagreements() == []
