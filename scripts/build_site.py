"""Build the static site of the executed notebooks: ``python scripts/build_site.py`` (``make site``).

The site is the README (front page), every notebook *with the outputs of* ``make run`` (read
from ``build/notebooks/``), the pages under ``docs/`` (glossary, DNO in DPO terms, exercise
solutions) and whatever they link to (benchmark results, figures). It is written to
``build/site/``; open ``build/site/index.html`` or serve the folder. Nothing is fetched from the
network, neither while building nor when a page is viewed (see ``docs/conf.py``).

Executed notebooks missing? The build stops and says which, and that ``make run`` (or
``make run NB=NN``) makes them. ``--allow-smoke`` instead takes a missing notebook from the
smoke run (``build/smoke/notebooks/``, made by ``make smoke`` or the tests) and puts a warning
banner at the top of its page: its numbers and figures are not the full-mode results.

Steps: stage the sources in ``build/site_src/`` (the README as ``README.md``, notebooks under
``notebooks/``, pages under ``docs/``, the same relative layout as the repository, so every
relative link of the README works unchanged), then run Sphinx with ``-W`` (a broken link or
unrenderable formula fails the build).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "site_assets/colab-badge.svg"  # a copy of docs/_static/colab-badge.svg
# ![alt](target) and [text](target) in Markdown; the target stops at whitespace or ')'
LINK = re.compile(r"(!?)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SMOKE_BANNER = """```{{warning}}
**Smoke-mode outputs.** This page shows `{name}` as executed in smoke mode (small sizes,
looser checks): its numbers and figures are not the full-mode results of the series. Run
`make run` (or `make run NB={prefix}`) and rebuild the site with `make site`.
```
"""


class SiteError(Exception):
    """Something the user must fix before the site can be built; the message says what."""


def find_sources(root: Path) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if p.name[:2].isdigit())


def pick_executed(sources: list[Path], executed_dir: Path, smoke_dir: Path,
                  allow_smoke: bool) -> dict[str, tuple[Path, str]]:
    """For each source notebook, the executed copy to show and its mode ("full" or "smoke")."""
    chosen, missing = {}, []
    for src in sources:
        full, smoke = executed_dir / src.name, smoke_dir / src.name
        if full.exists():
            chosen[src.name] = (full, "full")
        elif allow_smoke and smoke.exists():
            chosen[src.name] = (smoke, "smoke")
        else:
            missing.append(src.name)
    if missing:
        hint = (f"run `make run` first (full mode, about 15 minutes on a laptop; `make run NB=01` for "
                f"one notebook), which writes {executed_dir.relative_to(ROOT) if executed_dir.is_relative_to(ROOT) else executed_dir}/")
        if allow_smoke:
            hint += f"; or `make smoke`, whose outputs ({smoke_dir}) --allow-smoke uses"
        else:
            hint += "; or pass --allow-smoke to show smoke-mode outputs with a warning banner"
        raise SiteError(f"executed notebooks missing: {', '.join(missing)}\n{hint}")
    return chosen


def _cell_sources(nb: dict) -> list[str]:
    out = []
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        src = cell["source"]
        out.append("".join(src) if isinstance(src, list) else src)
    return out


def check_executed(src: Path, executed: Path) -> list[str]:
    """Problems with an executed copy: it failed, or its source changed since it ran."""
    nb = json.loads(executed.read_text())
    problems = []
    if nb.get("metadata", {}).get("papermill", {}).get("exception"):
        problems.append(f"{executed} stopped at an error: rerun it (`make run NB={src.name[:2]}`)")
    if _cell_sources(nb) != _cell_sources(json.loads(src.read_text())):
        problems.append(f"{executed} is older than notebooks/{src.name} (the cells differ): "
                        f"`make run NB={src.name[:2]}` refreshes it")
    return problems


def _badge_path(page: Path, srcdir: Path) -> str:
    depth = len(page.relative_to(srcdir).parts) - 1
    return "../" * depth + LOCAL_BADGE


def _localise_markdown(text: str, page: Path, srcdir: Path) -> str:
    """Use the local Colab badge image and refuse any other image from the network."""
    text = text.replace(COLAB_BADGE, _badge_path(page, srcdir))
    for m in LINK.finditer(text):
        if m.group(1) and re.match(r"[a-z]+://", m.group(2)):
            raise SiteError(f"{page.relative_to(srcdir)}: image {m.group(2)} would be fetched from "
                            "the network when the page is viewed; ship it in the repository")
    return text


def stage_notebook(executed: Path, mode: str, target: Path, srcdir: Path) -> None:
    nb = json.loads(executed.read_text())
    # papermill's injected-parameters cell holds this machine's absolute paths: drop it
    nb["cells"] = [c for c in nb["cells"]
                   if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            src = cell["source"]
            src = "".join(src) if isinstance(src, list) else src
            cell["source"] = _localise_markdown(src, target, srcdir)
    if mode == "smoke":
        banner = SMOKE_BANNER.format(name=executed.name, prefix=executed.name[:2])
        nb["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": banner,
                               "id": "smoke-banner"})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False))


def _relative_targets(text: str) -> list[str]:
    """Relative link and image targets of a Markdown text, without #fragments."""
    targets = []
    for m in LINK.finditer(text):
        target = m.group(2).split("#", 1)[0]
        if target and not re.match(r"[a-z]+:", target) and not target.startswith("/"):
            targets.append(target)
    return targets


def stage(root: Path, srcdir: Path, chosen: dict[str, tuple[Path, str]]) -> dict[str, list[str]]:
    """Lay out the site's sources in ``srcdir``; return the toctree entries by section."""
    if srcdir.exists():
        shutil.rmtree(srcdir)
    srcdir.mkdir(parents=True)
    (srcdir / Path(LOCAL_BADGE).parent).mkdir()
    shutil.copy(DOCS / "_static" / "colab-badge.svg", srcdir / LOCAL_BADGE)

    sections: dict[str, list[str]] = {"Notebooks": [], "Reference": [], "Exercise solutions": [],
                                      "Benchmarks": []}
    for name, (executed, mode) in chosen.items():
        stage_notebook(executed, mode, srcdir / "notebooks" / name, srcdir)
        sections["Notebooks"].append(f"notebooks/{Path(name).stem}")

    pages = [root / "README.md"]
    pages += sorted(p for p in DOCS.rglob("*.md") if not any(part.startswith("_") for part in
                                                             p.relative_to(DOCS).parts))
    staged, queue = set(), list(pages)
    while queue:  # copy each page, then whatever it links to, following links between pages
        page = queue.pop(0)
        rel = page.relative_to(root)
        if rel in staged:
            continue
        staged.add(rel)
        target = srcdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if page.suffix != ".md":
            shutil.copy(page, target)
            continue
        text = page.read_text()
        target.write_text(_localise_markdown(text, target, srcdir))
        for link in _relative_targets(text):
            linked = (page.parent / link).resolve()
            if not linked.is_relative_to(root) or not linked.is_file():
                continue  # Sphinx reports it as a broken link
            linked_rel = linked.relative_to(root)
            if linked_rel.parts[0] == "notebooks" and linked.suffix == ".ipynb":
                continue  # the executed copy is staged instead
            queue.append(linked)
        if rel.parts[0] == "docs":
            key = "Exercise solutions" if "solutions" in rel.parts else "Reference"
            sections[key].append(rel.with_suffix("").as_posix())
        elif rel.parts[0] == "benchmarks":
            sections["Benchmarks"].append(rel.with_suffix("").as_posix())

    # the front page lists every page in hidden tables of contents (the sidebar shows them)
    readme = srcdir / "README.md"
    toc = "".join(f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(entries)
                  + "\n```\n" for caption, entries in sections.items() if entries)
    readme.write_text(readme.read_text() + "\n" + toc)
    return sections


def run_sphinx(srcdir: Path, outdir: Path, doctrees: Path, quiet: bool) -> None:
    if outdir.exists():
        shutil.rmtree(outdir)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(DOCS), "-W", "--keep-going",
           "-E", "-d", str(doctrees), str(srcdir), str(outdir)]
    if quiet:
        cmd.insert(-2, "-q")
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SiteError(f"sphinx failed (exit {proc.returncode}); its warnings are above")
    # a server's default page: the front page is README.html
    (outdir / "index.html").write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="refresh" content="0; url=README.html">\n'
        "<title>dnolab</title></head>\n"
        '<body><p><a href="README.html">dnolab: the series</a></p></body></html>\n')


def build(out: Path, executed_dir: Path, smoke_dir: Path, allow_smoke: bool = False,
          strict: bool = False, quiet: bool = True, root: Path = ROOT) -> dict[str, str]:
    """Build the site into ``out``; return each notebook's mode ("full" or "smoke")."""
    sources = find_sources(root)
    if not sources:
        raise SiteError(f"no notebooks in {root / 'notebooks'}")
    chosen = pick_executed(sources, executed_dir, smoke_dir, allow_smoke)
    problems = [p for src in sources for p in check_executed(src, chosen[src.name][0])]
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    if problems and strict:
        raise SiteError("--strict: the executed notebooks above are not current")
    srcdir = out.parent / f"{out.name}_src"
    stage(root, srcdir, chosen)
    run_sphinx(srcdir, out, out.parent / f"{out.name}_doctrees", quiet)
    return {name: mode for name, (_, mode) in chosen.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site",
                        help="where the site goes (default: build/site)")
    parser.add_argument("--executed", type=Path, default=ROOT / "build" / "notebooks",
                        help="full-mode executed notebooks (default: build/notebooks, from make run)")
    parser.add_argument("--smoke-executed", type=Path, default=ROOT / "build" / "smoke" / "notebooks",
                        help="smoke-mode executed notebooks (default: build/smoke/notebooks)")
    parser.add_argument("--allow-smoke", action="store_true",
                        help="show smoke outputs, with a warning banner, for notebooks not run in full mode")
    parser.add_argument("--strict", action="store_true",
                        help="fail when an executed notebook failed or is older than its source")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    try:
        modes = build(args.out.resolve(), args.executed.resolve(), args.smoke_executed.resolve(),
                      args.allow_smoke, args.strict, quiet=not args.verbose)
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    smoke = [name for name, mode in modes.items() if mode == "smoke"]
    print(f"site: {args.out / 'index.html'} ({len(modes)} notebooks"
          + (f"; smoke-mode outputs for {', '.join(smoke)}" if smoke else "; all full mode") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
