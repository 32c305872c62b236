"""Every notebook: stored clean, follows the template, and runs in smoke mode via papermill."""

import ast
import json

import nbformat
import pytest
from conftest import NOTEBOOK_DIR, ROOT

from dnolab.notebooks import execute, find_notebooks

NOTEBOOKS = find_notebooks(NOTEBOOK_DIR)
IDS = [p.stem for p in NOTEBOOKS]


def test_the_readme_lists_every_notebook_and_only_those():
    import re

    linked = set(re.findall(r"\]\(notebooks/(\d\d_\w+)\.ipynb\)", (ROOT / "README.md").read_text()))
    assert linked == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"cell {i} of {path.name} has outputs"
            assert cell.execution_count is None, f"cell {i} of {path.name} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "colab.research.google.com" in first.source
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell must be tagged 'parameters'"
    tree = ast.parse(params[0].source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), "the parameters cell holds assignments only"
        ast.literal_eval(node.value)  # literals only: derived values go in the next cell
        names.update(t.id for t in node.targets)
    assert {"SMOKE", "SEED", "FIG_DIR", "METRICS_PATH"} <= names
    sources = "\n".join(c.source for c in nb.cells)
    assert "## Checks" in sources and "save_metrics(" in sources
    assert "## Summary" in sources and "## Exercises" in sources


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_in_smoke_mode(path):
    out = ROOT / "build"
    result = execute(path, out_dir=out, figures_dir=ROOT / "figures", smoke=True)
    assert result.status == "ok", f"{path.name} failed: {result.error} (see {result.output})"
    metrics = json.loads((out / "smoke" / "metrics" / f"{path.stem}.json").read_text())
    assert metrics["smoke"] is True
    figures = list((out / "smoke" / "figures" / path.stem).glob("*.png"))
    assert figures, "a notebook should save at least one figure"


@pytest.mark.parametrize(("notebook", "shipped"), [("04_dno_small_model", "toy"),
                                                   ("04_dno_small_model", "hub_qwen_ultrafeedback"),
                                                   ("06_dno_real_model", "smollm2_ifeval"),
                                                   ("06_dno_real_model", "qwen_ifeval_gpu")])
def test_notebooks_build_their_run_from_the_shipped_config(notebook, shipped):
    """With their default parameters (and CONFIG switched to the GPU yaml), the config cells of
    notebooks 04 and 06 give exactly the shipped config, except the run's name, seed and folder."""
    from pathlib import Path

    from dnolab.lm.config import load_config

    nb = nbformat.read(NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    config_cell = next(c for c in nb.cells if c.cell_type == "code" and "overrides = {" in c.source)
    namespace = {"load_config": load_config, "run_name": "nb", "run_root": Path("somewhere"), "smoke": {},
                 "print": lambda *a: None}
    exec(params.source, namespace)
    namespace["CONFIG"] = shipped
    exec(config_cell.source, namespace)
    expected = load_config(shipped).replace(name="nb", output_dir="somewhere", seed=namespace["SEED"])
    assert namespace["config"] == expected
