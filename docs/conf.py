"""Sphinx configuration: MyST Markdown pages, autodoc for the API, the Pallets theme.

Built by ``./run-tests.sh`` with ``-n -W --keep-going``: every warning, including every
reference that does not resolve, fails the build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import flask_webpubsub

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "flask-webpubsub"
copyright = "2026, The flask-webpubsub authors"
author = "The flask-webpubsub authors"
release = flask_webpubsub.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_click",
    "pallets_sphinx_themes",
    "webpubsub_sphinx",
]
exclude_patterns = ["_build", "pypi.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]
default_role = "code"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# The sidebar lists sections, not every documented object.
toc_object_entries = False

# No intersphinx: the build runs offline. Types from the libraries the package builds on are
# shown by name without a link; every reference to this package must resolve, except these
# names of the code's own that the reference shows by name: type variables and aliases, and
# attributes that docstrings name but autodoc cannot see (set in __init__, or module constants).
nitpick_ignore_regex = [
    (r"py:.*", r"(flask|werkzeug|click|azure|jwt|aiohttp|cloudevents|cryptography|pytest)\..*"),
    (r"py:.*", r"(collections\.abc|typing|types|enum|asyncio|concurrent\.futures|socket)\..*"),
    (r"py:class", r"Flask|CloudEvent|WebPubSubServiceClient|SansIOResponse|Future|Coroutine"),
    (r"py:class", r"rsa\.RSAPrivateKey"),
]
nitpick_ignore = [
    ("py:class", "JsonValue"),
    ("py:class", "flask_webpubsub.hubs.F"),
    ("py:class", "flask_webpubsub.emulator.runner.T"),
    ("py:class", "_Unset"),
    ("py:class", "ClientFactory"),
]

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
html_title = f"flask-webpubsub Documentation ({version})"
html_show_sourcelink = False
# The theme's banner asks PyPI for the newest release from the reader's browser; not wanted.
version_banner = False
