"""Point every notebook's Colab badge and install cell at the repository in pyproject.toml.

``python scripts/set_repository.py [--check] [--readme]``

The location lives in one place, ``[tool.dnolab]`` in ``pyproject.toml``::

    [tool.dnolab]
    repository = "dnolab/dnolab"   # GitHub owner/name
    branch = "main"

This script rewrites, in every ``notebooks/NN_*.ipynb``, the Colab badge link
(``https://colab.research.google.com/github/<repository>/blob/<branch>/notebooks/<file>``,
naming the notebook's own file) and the install cell's requirement
(``dnolab @ git+https://github.com/<repository>``, with ``@<branch>`` unless the branch is
``main``); ``--readme`` also rewrites the
README's Colab links. It edits the files' text in place, byte for byte elsewhere, and
changes nothing when they already agree. ``--check`` changes nothing and exits 1 listing
the files that disagree (``tests/test_repository_links.py`` runs the same check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
REF = re.compile(r"^[A-Za-z0-9_./-]+$")
# A Colab link to any repository, branch and notebook (the notebook's name ends the match).
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[^\s\"'()\\]+?/blob/"
                   r"[^\s\"'()\\]+?/notebooks/(?P<file>[A-Za-z0-9_.-]+\.ipynb)")
# The install requirement, with or without a ref after the repository.
INSTALL = re.compile(r"dnolab @ git\+https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
                     r"(?:@[A-Za-z0-9_./-]+)?")


def load_setting(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``{"repository": "owner/name", "branch": "main"}`` from ``[tool.dnolab]``."""
    table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("dnolab")
    if not table or "repository" not in table:
        raise SystemExit(f"{pyproject}: no [tool.dnolab] repository = \"owner/name\" setting")
    repository, branch = table["repository"], table.get("branch", "main")
    if not NAME.match(repository):
        raise SystemExit(f"[tool.dnolab] repository must be a GitHub owner/name, got {repository!r}")
    if not REF.match(branch):
        raise SystemExit(f"[tool.dnolab] branch is not a valid git ref: {branch!r}")
    return {"repository": repository, "branch": branch}


def colab_url(setting: dict[str, str], notebook: str) -> str:
    return (f"https://colab.research.google.com/github/{setting['repository']}/blob/"
            f"{setting['branch']}/notebooks/{notebook}")


def install_requirement(setting: dict[str, str]) -> str:
    """pip's requirement; the default branch ("main") needs no ref, any other branch or tag is pinned."""
    ref = "" if setting["branch"] == "main" else f"@{setting['branch']}"
    return f"dnolab @ git+https://github.com/{setting['repository']}{ref}"


def rewrite_notebook_text(text: str, notebook: str, setting: dict[str, str]) -> str:
    """The notebook's JSON text with its badge and install requirement pointing at ``setting``."""
    text = COLAB.sub(colab_url(setting, notebook), text)
    return INSTALL.sub(install_requirement(setting), text)


def rewrite_readme_text(text: str, setting: dict[str, str]) -> str:
    """README text whose Colab links keep their notebook and take the repository and branch."""
    return COLAB.sub(lambda m: colab_url(setting, m.group("file")), text)


def notebook_problems(path: Path, setting: dict[str, str]) -> list[str]:
    """What in notebook ``path`` disagrees with the setting (empty when it agrees)."""
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in cells]
    problems = []
    want_badge, want_install = colab_url(setting, path.name), install_requirement(setting)
    if not cells or want_badge not in sources[0]:
        problems.append(f"the first cell has no Colab badge linking {want_badge}")
    install_cells = [s for c, s in zip(cells, sources, strict=True)
                     if c["cell_type"] == "code" and "pip" in s and "install" in s]
    if not any(want_install in s for s in install_cells):
        problems.append(f"no install cell installs {want_install!r}")
    for source in sources:
        for m in COLAB.finditer(source):
            if m.group(0) != want_badge:
                problems.append(f"a Colab link disagrees: {m.group(0)}")
        for m in INSTALL.finditer(source):
            if m.group(0) != want_install:
                problems.append(f"an install requirement disagrees: {m.group(0)}")
    return problems


def readme_problems(path: Path, setting: dict[str, str]) -> list[str]:
    text = path.read_text()
    return [f"a Colab link disagrees: {m.group(0)}" for m in COLAB.finditer(text)
            if m.group(0) != colab_url(setting, m.group("file"))]


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if p.name[:2].isdigit())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on disagreement")
    parser.add_argument("--readme", action="store_true", help="also rewrite README.md's Colab links")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    setting = load_setting(args.root / "pyproject.toml")
    print(f"repository {setting['repository']}, branch {setting['branch']}")

    failures = []
    for path in notebooks(args.root):
        if args.check:
            failures += [f"{path.name}: {p}" for p in notebook_problems(path, setting)]
            continue
        text = path.read_text()
        new = rewrite_notebook_text(text, path.name, setting)
        if new != text:
            json.loads(new)  # still valid JSON: only URLs inside strings changed
            path.write_text(new)
            print(f"rewrote {path.relative_to(args.root)}")
        problems = notebook_problems(path, setting)
        failures += [f"{path.name}: {p}" for p in problems]
    readme = args.root / "README.md"
    if readme.exists():
        if args.readme and not args.check:
            text = readme.read_text()
            new = rewrite_readme_text(text, setting)
            if new != text:
                readme.write_text(new)
                print("rewrote README.md")
        if args.readme or args.check:
            failures += [f"README.md: {p}" for p in readme_problems(readme, setting)]
    if failures:
        print("\n".join(failures), file=sys.stderr)
        if not args.check:
            print("(a notebook without a badge or an install cell needs one by hand)", file=sys.stderr)
        return 1
    print("every notebook agrees with [tool.dnolab]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
