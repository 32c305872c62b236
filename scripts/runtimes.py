"""Keep the notebooks' stated runtimes equal to what ``make run`` measured.

``python scripts/runtimes.py [--write] [--report build/notebook_report.json]``

``make run`` executes every notebook in full mode and the runner writes each one's seconds to
``build/notebook_report.json``. With ``--write`` this script turns those seconds into the
rounded phrase ("10 s", "1.5 min", "25 min") that the README's notebook table and each
notebook's ``**Runtime**: about … on a 2-core laptop CPU`` line state; without it, it only
checks that README and notebooks agree with each other (``tests/test_runtimes.py`` runs that
check), so no time is ever written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOTEBOOKS = ROOT / "notebooks"
# the runtime phrase in a notebook's first cell (a JSON string in the .ipynb file)
NOTEBOOK_RUNTIME = re.compile(r"(\*\*Runtime\*\*: about )([^*\"]+?)( on a 2-core laptop CPU)")
README_ROW = re.compile(r"^(\| (\d\d) \|[^|]*\|[^|]*\| )([^|]+?)( \|.*)$", re.MULTILINE)


def phrase(seconds: float) -> str:
    """Seconds as a rounded phrase: 5 s steps below a minute, ½ min below 10 min, then 5 min."""
    if seconds < 57.5:
        return f"{max(5, 5 * round(seconds / 5))} s"
    minutes = seconds / 60
    if minutes < 9.75:
        half = round(minutes * 2) / 2
        return f"{half:g} min"
    return f"{5 * round(minutes / 5)} min"


def notebook_phrases() -> dict[str, str]:
    """Number → the runtime phrase each notebook states."""
    out = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        match = NOTEBOOK_RUNTIME.search(path.read_text())
        out[path.name[:2]] = match.group(2) if match else None
    return out


def readme_phrases() -> dict[str, str]:
    """Number → the runtime the README's notebook table states (its CPU column, first part)."""
    return {m.group(2): m.group(3).split(" (")[0].strip() for m in README_ROW.finditer(README.read_text())}


def disagreements() -> list[str]:
    nb, rd = notebook_phrases(), readme_phrases()
    out = [f"notebook {k} states no '**Runtime**: about … on a 2-core laptop CPU'" for k, v in nb.items() if not v]
    out += [f"notebook {k}: README says {rd.get(k)!r}, the notebook {v!r}" for k, v in nb.items()
            if v and rd.get(k) != v]
    return out


def write(report: Path) -> list[str]:
    """Rewrite README and notebooks from the runner's report (full-mode runs that passed)."""
    results = json.loads(report.read_text())
    measured = {r["notebook"][:2]: phrase(r["seconds"]) for r in results if r["status"] == "ok"}
    readme = README.read_text()
    readme = README_ROW.sub(lambda m: (m.group(1) + measured[m.group(2)] + m.group(4)
                                       if m.group(2) in measured else m.group(0)), readme)
    README.write_text(readme)
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if path.name[:2] in measured:
            text = path.read_text()
            new = NOTEBOOK_RUNTIME.sub(lambda m, k=path.name[:2]: m.group(1) + measured[k] + m.group(3), text)
            if new != text:
                path.write_text(new)
    return [f"{k}: {v}" for k, v in sorted(measured.items())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite README and notebooks from the report")
    parser.add_argument("--report", type=Path, default=ROOT / "build" / "notebook_report.json")
    args = parser.parse_args()
    if args.write:
        if not args.report.exists():
            print(f"no {args.report}: run `make run` first", file=sys.stderr)
            return 1
        print("runtimes:", ", ".join(write(args.report)))
    problems = disagreements()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
