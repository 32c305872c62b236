"""Shared test helpers: the repository root and a way to build tiny notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
# No test touches the network: Hub lookups fail at once instead of waiting on timeouts.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("DNOLAB_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: see dnolab.utils


@pytest.fixture
def make_notebook(tmp_path):
    """Write a notebook from (source, tags) pairs into tmp_path/notebooks and return its path."""

    def _make(name: str, cells: list[tuple[str, list[str]]]) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}
        for source, tags in cells:
            cell = nbformat.v4.new_code_cell(source)
            if tags:
                cell.metadata["tags"] = tags
            nb.cells.append(cell)
        folder = tmp_path / "notebooks"
        folder.mkdir(exist_ok=True)
        path = folder / name
        nbformat.write(nb, path)
        return path

    return _make
