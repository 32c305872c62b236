"""Edit notebooks as plain text: ``python scripts/nb.py to-py NN`` / ``to-ipynb NN``.

``to-py`` writes ``build/nbsrc/<stem>.py`` (jupytext's py:percent) from ``notebooks/<stem>.ipynb``;
``to-ipynb`` writes it back as a clean notebook: no outputs, the python3 kernelspec, and
cell ids numbered in order so that re-conversions give small diffs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = ROOT / "build" / "nbsrc"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _stem(prefix: str, folder: Path, suffix: str) -> Path:
    matches = sorted(folder.glob(f"{prefix}*{suffix}"))
    if len(matches) != 1:
        sys.exit(f"expected one {folder}/{prefix}*{suffix}, found {[m.name for m in matches]}")
    return matches[0]


def to_py(prefix: str) -> Path:
    src = _stem(prefix, NOTEBOOKS, ".ipynb")
    SOURCES.mkdir(parents=True, exist_ok=True)
    out = SOURCES / f"{src.stem}.py"
    jupytext.write(jupytext.read(src), out, fmt="py:percent")
    return out


def to_ipynb(prefix: str) -> Path:
    src = _stem(prefix, SOURCES, ".py")
    nb = jupytext.read(src, fmt="py:percent")
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
    nbformat.validate(nb)
    out = NOTEBOOKS / f"{src.stem}.ipynb"
    nbformat.write(nb, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("direction", choices=["to-py", "to-ipynb"])
    parser.add_argument("prefixes", nargs="+", help="notebook number or name prefix, e.g. 01")
    args = parser.parse_args()
    for prefix in args.prefixes:
        print((to_py if args.direction == "to-py" else to_ipynb)(prefix))


if __name__ == "__main__":
    main()
