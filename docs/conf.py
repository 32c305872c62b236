"""Sphinx configuration of the dnolab site (``make site`` -> ``python scripts/build_site.py``).

The build script stages the README (the front page), the executed notebooks, these pages and
the files they link into ``build/site_src`` and runs Sphinx on it with this folder as its
configuration directory, writing ``build/site``.

Why Sphinx + MyST-NB (and not MkDocs + mkdocs-jupyter):
* maintenance: Sphinx (9.x) and MyST-NB / MyST-Parser (executablebooks, the Jupyter Book
  stack) are actively released; MkDocs itself has had no release since 1.6.1 (Aug 2024) and
  Material for MkDocs, its main theme, has announced maintenance mode;
* offline: nothing here fetches anything at build or view time. Execution is off (the
  notebooks were executed by ``make run``), MathJax is replaced by ``_ext/mathml.py``, which
  turns every formula into MathML at build time with the pure-Python latex2mathml, widget
  JavaScript from a CDN is switched off, and the Furo theme uses system fonts;
* notebooks: MyST-NB renders stored outputs (text, tables, PNG figures) and parses markdown
  cells as MyST, so ``$...$`` math and relative links to other notebooks, the README and
  these pages resolve like any cross-reference, and a broken one fails the build (``-W``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "dnolab"
author = "dnolab contributors"
copyright = "dnolab contributors"
root_doc = "README"  # the README is the front page; build_site.py adds index.html -> README.html

extensions = ["myst_nb", "mathml"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# MyST: $...$ / $$...$$ math, GitHub-style heading anchors (README.md#section links work)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4

# MyST-NB: show the outputs stored by `make run`; never execute, never load widget JS
nb_execution_mode = "off"
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),  # tqdm bars: use their text
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
nb_merge_streams = True

html_theme = "furo"
html_title = "dnolab: Direct Nash Optimization, from first principles"
html_math_renderer = "mathml"
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_favicon = "_static/favicon.svg"  # also spares the browser a request for /favicon.ico
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
