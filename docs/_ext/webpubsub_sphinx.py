"""What the site generates from the code, so it cannot drift from it.

- ``{webpubsub-config}``: the configuration reference, from ``flask_webpubsub.config.CONFIG_KEYS``.
- ``{program-help} module``: the ``--help`` text of ``python -m module``, as the program prints it.
- reStructuredText that reached a Markdown page as text (a directive that generates rST, used
  in a MyST page outside ``{eval-rst}``) is a warning, so the build fails instead of showing it.
- A short name in a docstring (``ConnectResponse`` in ``flask_webpubsub.core.reply``) that
  Sphinx does not find in the docstring's own module resolves to the one documented object
  of that name (``flask_webpubsub.ConnectResponse``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import sys
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from flask_webpubsub.config import CONFIG_KEYS

logger = logging.getLogger(__name__)

#: Characters that mean something in MyST inline syntax, escaped in the registry's plain text.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#$~])")
KEY = re.compile(r"\bWEBPUBSUB_[A-Z0-9_]+\b")


def markdown_text(text: str) -> str:
    """Plain text as MyST inline Markdown: special characters escaped, and every configuration
    key it names linked to that key's entry."""
    keys = KEY.findall(text)
    parts = KEY.split(text)
    out = [MARKDOWN_SPECIAL.sub(r"\\\1", parts[0])]
    for key, rest in zip(keys, parts[1:], strict=True):
        out.append(f"{{confval}}`{key}`" if key in CONFIG_KEYS else f"`{key}`")
        out.append(MARKDOWN_SPECIAL.sub(r"\\\1", rest))
    return "".join(out)


def config_reference(registry: dict[str, tuple[Any, str]] = CONFIG_KEYS) -> str:
    """The configuration reference as MyST Markdown: a summary table, then one ``confval``
    entry per key, in the registry's order."""
    lines = ["| key | default |", "| --- | --- |"]
    lines += [f"| {{confval}}`{key}` | `{default!r}` |" for key, (default, _) in registry.items()]
    for key, (default, meaning) in registry.items():
        lines += ["", f"````{{confval}} {key}", f":default: `{default!r}`", "",
                  markdown_text(meaning), "````"]
    return "\n".join(lines) + "\n"


def program_help(module: str) -> str:
    """What ``python -m module --help`` prints, at a fixed width."""
    stdout = io.StringIO()
    argv, columns = sys.argv, os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.suppress(SystemExit):
            runpy.run_module(module, run_name="__main__", alter_sys=False)
    finally:
        sys.argv = argv
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return stdout.getvalue()


class ConfigReference(SphinxDirective):
    """The configuration reference, generated from the registry."""

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(
            config_reference().splitlines(), self.content_offset, container
        )
        return list(container.children)


class ProgramHelp(SphinxDirective):
    """A program's ``--help`` text as a literal block."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        text = program_help(self.arguments[0])
        block = nodes.literal_block(text, text, language="text")
        return [block]


def resolve_documented_name(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a short Python name that Sphinx did not find to the one documented object of that
    name, if there is exactly one."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target:
        return None
    domain: Any = env.get_domain("py")
    found = [name for name in domain.objects if name.endswith(f".{target}")]
    # autodoc also registers a class under its defining module's name (its canonical name):
    # one object, two names.
    if len({(domain.objects[name].docname, domain.objects[name].node_id) for name in found}) != 1:
        return None
    resolved: nodes.Element | None = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], found[0], node, contnode
    )
    return resolved


RST_DIRECTIVE = re.compile(r"^\.\. [\w:-]+::", re.MULTILINE)


def warn_about_leaked_rst(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Warn about paragraphs that are reStructuredText directives shown as text."""
    for paragraph in doctree.findall(nodes.paragraph):
        if RST_DIRECTIVE.search(paragraph.astext()):
            logger.warning("reStructuredText shown as text (wrap its directive in "
                           "{eval-rst}): %r", paragraph.astext()[:60], location=paragraph)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("webpubsub-config", ConfigReference)
    app.add_directive("program-help", ProgramHelp)
    app.connect("missing-reference", resolve_documented_name)
    app.connect("doctree-resolved", warn_about_leaked_rst)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
