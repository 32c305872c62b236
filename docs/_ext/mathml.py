"""A Sphinx math renderer that writes MathML at build time: the site needs no MathJax.

Every ``$...$`` and ``$$...$$`` of the notebooks and pages is converted by latex2mathml (pure
Python) into ``<math>`` elements, which browsers render natively (MathML Core: Chromium 109+,
Firefox, Safari). Nothing is fetched when a page is opened. An expression latex2mathml cannot
convert is a build warning (an error under ``-W``), shown as its LaTeX source in ``<code>``.
"""

from __future__ import annotations

from html import escape

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

logger = logging.getLogger(__name__)


def _mathml(node, latex: str, display: str) -> str:
    try:
        return convert(latex.strip(), display=display)
    except Exception as err:  # latex2mathml raises its own exception classes
        logger.warning("cannot convert math to MathML (%s): %s", err, latex, location=node)
        return f'<code class="math-error">{escape(latex)}</code>'


def visit_math(self, node) -> None:
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(_mathml(node, node.astext(), "inline"))
    self.body.append("</span>")
    raise nodes.SkipNode


def visit_displaymath(self, node) -> None:
    latex = node.astext()
    # Sphinx's convention: equations separated by blank lines are separate lines of a block
    parts = [latex] if node.get("nowrap") else [p for p in latex.split("\n\n") if p.strip()]
    self.body.append(self.starttag(node, "div", CLASS="math notranslate nohighlight"))
    if node.get("number"):
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, "Link to this equation")
        self.body.append("</span>")
    for part in parts:
        self.body.append(_mathml(node, part, "block"))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
