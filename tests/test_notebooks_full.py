"""Notebooks 01–04 in FULL mode, their Checks cells included: CI guards the headline claims,
not only the smoke runs (``pytest -m full``).

Smoke mode (tests/test_notebooks.py) shrinks every size and asserts directions only; the
thresholds the notebooks' text relies on (notebook 04: the final student beats the imperfect
teacher under the held-out quality-only judge, with its 95 % interval) are asserted only in
full mode. Notebook 05 (about 20 minutes) stays out: it is run by ``make run``.

Everything goes under ``build/full_test/``: executed notebooks, metrics, figures (never the
committed ``figures/``) and notebook 04's run folder (never the one ``make run`` uses).
"""

import json

import pytest
from conftest import NOTEBOOK_DIR, ROOT

from dnolab.notebooks import execute, find_notebooks

pytestmark = pytest.mark.full

OUT = ROOT / "build" / "full_test"
FULL = find_notebooks(NOTEBOOK_DIR, ["01", "02", "03", "04"])
# notebooks with a run folder get their own, so a concurrent `make run` is never disturbed
RUN_DIRS = {"04_dno_small_model": OUT / "runs" / "04_dno_small_model"}


@pytest.mark.parametrize("path", FULL, ids=[p.stem for p in FULL])
def test_runs_in_full_mode_and_its_checks_pass(path):
    params = {"RUN_DIR": str(RUN_DIRS[path.stem])} if path.stem in RUN_DIRS else {}
    result = execute(path, out_dir=OUT, figures_dir=OUT / "figures", smoke=False, parameters=params)
    assert result.status == "ok", f"{path.name} failed in full mode: {result.error} (see {result.output})"
    metrics = json.loads((OUT / "metrics" / f"{path.stem}.json").read_text())
    assert metrics["smoke"] is False
    figures = list((OUT / "figures" / path.stem).glob("*.png"))
    assert figures, "a notebook should save at least one figure"
    committed = ROOT / "figures" / path.stem
    assert all(committed not in f.parents for f in figures)
