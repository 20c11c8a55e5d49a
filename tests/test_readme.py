"""The README is the project's landing page, and keeps what it promises.

- It starts with the two commands (the example chat on the emulator, the whole check), and
  their comments say what the scripts do.
- Its example app runs, and works as its comments say.
- Every command it shows is one its program accepts (``tests/docs_examples.py`` checks them as
  it checks the docs'). The production command is not among them: the deployment guide alone
  holds it (the tests that run it read it there), and "In production" links to it.
- Every relative link resolves: to a page of the docs site (and a heading of it, for an
  anchor), or to a file of the repository; every page of the site is linked from it.
- ``docs/pypi.md``, the package's description on PyPI, links only to absolute URLs: on PyPI a
  relative link leads nowhere.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from flask_webpubsub.emulator import EmulatorThread
from flask_webpubsub.testing import WebPubSubTestClient

from . import secrets_guard
from .docs_examples import DOCS, ROOT, Example, check_command, commands, examples

README = ROOT / "README.md"
PYPI = DOCS / "pypi.md"

#: The commands the README starts with, in order.
FIRST_COMMANDS = ["./run-example.sh", "./run-tests.sh"]

#: Languages of the blocks in the README: ``bash`` lines are commands as they are typed (the
#: first block), ``console`` blocks have ``$ `` prompts.
LANGUAGES = {"python", "console", "bash"}


def tokens(path: Path) -> list[Token]:
    return MarkdownIt("commonmark").parse(path.read_text())


def bash_commands(example: Example) -> list[tuple[str, str]]:
    """A ``bash`` block's commands: (the command, its trailing comment), one per line."""
    found = []
    for line in example.code.splitlines():
        if not line.strip():
            continue
        command, _, comment = line.partition(" #")
        found.append((command.strip(), comment.strip()))
    return found


# --- the two commands --------------------------------------------------------------------------


def test_the_readme_starts_with_the_two_commands() -> None:
    title, first = [t for t in tokens(README) if t.level == 0 and t.nesting >= 0][:2]
    assert (title.type, title.tag) == ("heading_open", "h1")
    assert (first.type, first.info) == ("fence", "bash")
    found = bash_commands(examples(README)[0])
    assert [command for command, _ in found] == FIRST_COMMANDS
    for command, comment in found:
        assert comment, f"{command} has no comment saying what it does"
        assert os.access(ROOT / command, os.X_OK), f"{command} is not an executable script"


def first_comment(script: str) -> str:
    return dict(bash_commands(examples(README)[0]))[script]


def test_the_example_commands_comment_says_where_the_chat_runs() -> None:
    comment = first_comment("./run-example.sh")
    script = (ROOT / "run-example.sh").read_text()
    assert "python -m example_app" in script
    assert "setup-example-venv.sh" in script
    assert "emulator" in comment
    main = (ROOT / "example_app" / "__main__.py").read_text()
    assert '"127.0.0.1"' in main
    assert 'port("EXAMPLE_PORT", 5000)' in main
    assert "http://127.0.0.1:5000" in comment


def test_the_test_commands_comment_names_what_the_script_runs_and_installs() -> None:
    comment = first_comment("./run-tests.sh")
    script = (ROOT / "run-tests.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./run-tests.sh" in ci, "CI runs the test command the README starts with"
    runs = {
        "ruff": ".venv/bin/ruff check .",
        "mypy": ".venv/bin/mypy",
        "the docs build": "-m sphinx -b html -n -W",
        "all tests": "exec .venv/bin/python -m pytest",
    }
    for name, line in runs.items():
        assert line in script
        assert name in comment
    system = (ROOT / ".ci" / "install-system-packages.sh").read_text()
    for package in ("chromium", "wrk", "nginx"):
        assert f'missing="$missing {package}"' in system
        assert package in comment
    assert "install-node-packages.sh" in script
    assert "JS SDKs" in comment


# --- the example -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    """The Web PubSub service the example's ``WEBPUBSUB_CONNECTION_STRING`` names."""
    with EmulatorThread() as emulator:
        secrets_guard.KNOWN_KEYS.add(emulator.endpoint.access_key or "")
        yield emulator


def test_every_block_is_of_a_kind_this_module_checks() -> None:
    assert [f"{e.where}: ```{e.language}" for e in examples(README)
            if e.language not in LANGUAGES or e.marker is not None] == []


def test_the_example_runs_and_does_what_its_comments_say(
    emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBPUBSUB_CONNECTION_STRING", emulator.connection_string)
    module = types.ModuleType("readme_example")
    module.__file__ = str(README)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    python = [e for e in examples(README) if e.language == "python"]
    assert python, "the README shows no example"
    for example in python:
        # Padded so that a traceback names the line of the README.
        exec(compile("\n" * example.line + example.code, str(README), "exec"),  # noqa: S102
             module.__dict__)

    client = WebPubSubTestClient(module.app)
    alice = client.connect(user_id="alice")
    assert (alice.accepted, alice.user_id, alice.groups, alice.roles) == (
        True, "alice", ["lobby"], ["webpubsub.sendToGroup.lobby"])
    assert alice.user_event("echo", "hi").data == "hi"
    assert alice.state == {"sent": 1}
    assert alice.disconnected("bye").status == 200
    assert client.connect().user_id == "guest"
    banned = client.connect(query={"role": ["banned"]}).result
    assert banned is not None
    assert (banned.accepted, banned.status, banned.reason) == (False, 403, "banned")


def test_every_command_is_accepted_by_its_program() -> None:
    found = []
    for example in examples(README):
        if example.language == "bash":
            lines = [shlex.split(command) for command, _ in bash_commands(example)]
        elif example.language == "console":
            lines = commands(example)
            assert lines, f"{example.where}: a console block with no `$ ` command"
        else:
            continue
        found += [f"{example.where}: {problem}" for words in lines
                  for problem in check_command(words)]
    assert found == []


def section(path: Path, title: str) -> str:
    """The Markdown of the ``## title`` section of ``path``, up to the next ``##`` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", path.read_text(),
                      re.MULTILINE | re.DOTALL)
    assert match, f"{path.name} has no section {title!r}"
    return match.group(1)


def test_the_production_section_links_to_the_deployment_guides_command() -> None:
    assert "docs/deployment.md#a-production-server" in markdown_links(
        section(README, "In production"))
    assert re.search(r"^\$ granian --interface wsgi .* app:app$",
                     section(DOCS / "deployment.md", "A production server"), re.MULTILINE)
    assert "granian --interface" not in README.read_text(), "one copy, the deployment guide's"


# --- links -------------------------------------------------------------------------------------


def links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file, raw HTML's ``href``/``src`` included."""
    return markdown_links(path.read_text())


def markdown_links(markdown: str) -> list[str]:
    """Every link and image target of some Markdown, raw HTML's ``href``/``src`` included."""
    found = []
    pending = MarkdownIt("commonmark").parse(markdown)
    while pending:
        token = pending.pop(0)
        pending[:0] = token.children or []
        if token.type == "link_open":
            found.append(str(token.attrs["href"]))
        elif token.type == "image":
            found.append(str(token.attrs["src"]))
        elif token.type in ("html_inline", "html_block"):
            found += re.findall(r"""(?:href|src)\s*=\s*["']([^"']+)""", token.content)
    return found


def is_relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


def site_pages() -> set[Path]:
    """The pages of the docs site: the root and every page its toctrees name."""
    index = DOCS / "index.md"
    pages = {index}
    for toctree in re.findall(r"```\{toctree\}\n(.*?)```", index.read_text(), re.DOTALL):
        for entry in toctree.splitlines():
            entry = entry.strip()
            if entry and not entry.startswith(":"):
                [page] = [p for p in (DOCS / f"{entry}.md", DOCS / f"{entry}.rst") if p.exists()]
                pages.add(page)
    return pages


def anchors(page: Path) -> set[str]:
    """The anchors a Markdown page's headings get (as GitHub and MyST make them) and its
    ``(label)=`` targets."""
    text = page.read_text()
    found = set(re.findall(r"^\((\S+)\)=$", text, re.MULTILINE))
    parsed = MarkdownIt("commonmark").parse(text)
    for token, content in itertools.pairwise(parsed):
        if token.type == "heading_open":
            found.add(re.sub(r"[^\w\- ]", "", content.content.lower()).replace(" ", "-"))
    return found


def test_every_relative_link_resolves() -> None:
    pages = site_pages()
    dead = []
    for target in filter(is_relative, links(README)):
        path, _, anchor = target.partition("#")
        file = (ROOT / path).resolve()
        if not path or not file.exists():
            dead.append(f"{target}: no such file")
        elif file.parent == DOCS and file.suffix in (".md", ".rst") and file not in pages:
            dead.append(f"{target}: not a page of the docs site")
        elif anchor and anchor not in anchors(file):
            dead.append(f"{target}: no heading or label {anchor!r} in {path}")
    assert dead == []


def test_every_page_of_the_site_is_linked() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in filter(is_relative, links(README))}
    # The site's changelog and license pages include the repository's files, linked as such.
    included = {DOCS / "changes.md": ROOT / "CHANGELOG.md", DOCS / "license.md": ROOT / "LICENSE"}
    assert sorted(str(page.relative_to(ROOT)) for page in site_pages()
                  if included.get(page, page) not in linked) == []


def test_the_pypi_description_links_only_to_absolute_urls() -> None:
    assert [target for target in links(PYPI) if is_relative(target)] == []


# --- the link checks themselves ------------------------------------------------------------------


def test_links_are_found_in_markdown_and_html(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](docs/a.md) ![b](b.png) <https://example.com>\n\n"
        '<img src="c.png">\n\n- [d](docs/d.md#part) and <a href="e.md">e</a>\n'
    )
    assert sorted(links(page)) == sorted(
        ["docs/a.md", "b.png", "https://example.com", "c.png", "docs/d.md#part", "e.md"])
    assert [t for t in links(page) if is_relative(t)] == [
        "docs/a.md", "b.png", "c.png", "docs/d.md#part", "e.md"]


def test_anchors_are_the_slugs_of_headings_and_labels() -> None:
    found = anchors(DOCS / "deployment.md")
    assert {"a-production-server", "direct-dispatch", "production-server"} <= found
    assert "the-app-calling-the-service" in found
