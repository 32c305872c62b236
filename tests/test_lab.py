"""Notebook 01 runs top to bottom through a real JupyterLab server (scripts/lab_check.py)."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_notebook_01_runs_in_jupyterlab():
    name = "01_bradley_terry_limits.ipynb"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lab_check.py"), "--smoke", "--timeout", "300",
         name], capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    row = re.search(rf"^{re.escape(name)}\s+ok\s+[\d.]+\s+(\d+)$", result.stdout, re.MULTILINE)
    assert row, result.stdout
    assert int(row.group(1)) > 0, "no figure was displayed inline"
