"""Sphinx configuration for the simlab documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs /tmp/docs-html``.
The theory pages are MyST Markdown with dollar maths; the API reference is generated recursively
from the package docstrings (autosummary), so renamed or new modules need no edit here.
"""
from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import simlab  # noqa: E402

project = "simlab"
author = "the simlab authors"
copyright = "2026, the simlab authors"
release = simlab.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "tools", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# MyST: $...$ and $$...$$ maths, heading anchors so "dro.md §2.2" links resolve as #22-chi-square-ball.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API reference: autosummary walks the package recursively (see api.md). Its generated stubs are
# rebuilt from scratch on every build, so a renamed or removed module leaves no stale page behind.
shutil.rmtree(os.path.join(os.path.dirname(__file__), "_autosummary"), ignore_errors=True)
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

# Maths: sphinx.ext.mathjax renders formulas in the reader's browser with MathJax loaded from Sphinx's
# default CDN URL (jsDelivr, MathJax 4). The build itself never touches the network (it only writes the
# <script> tag), so it works offline and in CI. Read offline, a page shows each formula as its TeX
# source, which stays legible. For rendered formulas without network, build with a local MathJax copy:
#     python -m sphinx -b html -D mathjax_path=mathjax/tex-mml-chtml.js docs DIR
# with a complete MathJax distribution copied to DIR/_static/mathjax/ (a relative path is taken from
# DIR/_static; a file:// or http:// URL works too). MathJax (several
# MB of JavaScript and fonts) is deliberately not vendored, and LaTeX-rendered images
# (sphinx.ext.imgmath) would add a TeX toolchain to the docs extra; see CONTRIBUTING.md, "Documentation".

html_theme = "alabaster"
html_title = "simlab"
html_static_path: list[str] = []

nitpicky = False

# --------------------------------------------------------------------------- docstring conventions
# House style: docstrings write maths in plain ASCII, with |x| for an absolute value and ||x|| for a
# norm. reStructuredText would read "|x|" as a substitution reference (simlab defines none), so every
# "|" in a docstring is escaped before parsing: it is shown as written. No warning is silenced by this.
# Every docstring is parsed as numpydoc/reST: a malformed one fails the build (-W).

# Methods that inherit their docstring from a third-party base class; the inherited text cross-references
# labels of that project's own documentation, which do not exist here, so it is not shown.
FOREIGN_DOCSTRINGS: frozenset[str] = frozenset({
    "simlab.pytest_plugin.ClaimItem.runtest",        # inherited from pytest.Item
    "simlab.pytest_plugin.ClaimItem.repr_failure",   # inherited from pytest.Item
    "simlab.pytest_plugin.ClaimItem.reportinfo",     # inherited from pytest.Item
})


def _escape_bars(line: str) -> str:
    return line.replace("\\|", "|").replace("|", "\\|")


def _process_docstring(app, what, name, obj, options, lines):  # noqa: ARG001 (Sphinx signature)
    if name in FOREIGN_DOCSTRINGS:
        lines[:] = []
        return
    lines[:] = [_escape_bars(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
    return {"parallel_read_safe": True}
