"""The documentation's code examples, read from its Markdown pages, and the checks of its shell
commands against the real programs. Used by ``tests/test_docs.py``.

A page's examples are its fenced code blocks (directives such as ```` ```{toctree} ```` are not
examples). What each kind is and how it is checked:

- ``python``: run, in the page's order, in one fresh module namespace per page, as a reader
  would type them into one file. The runner sets ``WEBPUBSUB_CONNECTION_STRING`` to a running
  emulator, as a reader's shell would name their Web PubSub resource.
- ``python`` right after ``<!-- test: pytest -->``: a test module, run by pytest in a
  subprocess with the installed plugin; every test in it must pass.
- ``console``: every ``$ `` line is a command, checked by :func:`check_command` against the
  program it runs (its options parsed by that program's own parser where it has one).
- ``text``: the output of the ``console`` block right before it; not checked.
- ``nginx``: configuration for nginx's ``http`` block, checked by ``nginx -t``.

Any other language is an error, so no example goes unchecked by accident.

The one kind that is compiled but not run: the short ``::`` snippets in the package's own
docstrings, which the API reference shows. They are fragments (``...`` bodies, a bare ``await``)
that lean on the surrounding text; :func:`docstring_examples` finds them all, and the test
compiles each (or checks it as a command, when it is one), so a snippet that is not Python
fails.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Markers a block may carry (an HTML comment on the line before it).
MARKERS = {"pytest"}
LANGUAGES = {"python", "console", "text", "nginx"}
MARKER = re.compile(r"<!--\s*test:\s*(\S+)\s*-->")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page of the site (and the PyPI description beside it), and the changelog
    that the site includes."""
    found = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    return [*found, ROOT / "CHANGELOG.md"]


def examples(page: Path) -> list[Example]:
    """The page's fenced code blocks, in order."""
    text = page.read_text()
    lines = text.splitlines()
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        info = token.info.strip()
        if info.startswith("{"):
            continue  # a MyST directive, not an example
        start = token.map[0]
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = MARKER.fullmatch(previous)
        found.append(Example(page, start + 1, info.split()[0] if info else "",
                             token.content, marker.group(1) if marker else None))
    return found


def problems(example: Example) -> list[str]:
    """What makes a block not an example this module can check."""
    found = []
    if example.language not in LANGUAGES:
        found.append(f"{example.where}: a ```{example.language or '(no language)'} block: "
                     f"use one of {sorted(LANGUAGES)}")
    if example.marker is not None and example.marker not in MARKERS:
        found.append(f"{example.where}: unknown marker {example.marker!r}")
    if example.marker == "pytest" and example.language != "python":
        found.append(f"{example.where}: only a python block can be a pytest module")
    return found


def commands(example: Example) -> list[list[str]]:
    """The commands of a console block: its ``$ `` lines, split as the shell splits them,
    without leading ``NAME=value`` assignments."""
    found = []
    for line in example.code.splitlines():
        if not line.startswith("$ "):
            continue
        words = shlex.split(line[2:], comments=True)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words.pop(0)
        found.append(words)
    return found


# --- the checks of shell commands ----------------------------------------------------------------

#: Commands of other projects' tools that the docs show and this suite cannot run or parse.
NOT_CHECKED = {
    "export",  # a shell builtin: sets what a later command reads
    "npm",  # installs Azure's tunnel tool (Node.js)
    "awps-tunnel",  # Azure's tunnel tool
}


def check_command(words: list[str]) -> list[str]:
    """What is wrong with one documented command; empty when nothing is."""
    if not words:
        return ["an empty command"]
    program, args = words[0], words[1:]
    if program in NOT_CHECKED:
        return []
    if program in ("python", ".venv/bin/python") and args[:1] == ["-m"]:
        return _check_python_module(args[1], args[2:])
    if program in ("pip", ".venv/bin/pip"):
        return _check_pip(args)
    if program == "flask":
        return _check_flask(args)
    if program in ("granian", "gunicorn"):
        return _check_options_in_help(program, args)
    if program == "twine":
        return [] if args[:1] == ["check"] else [f"twine {args[:1]}: only `twine check` is shown"]
    if program.startswith("./"):
        return [] if (ROOT / program).is_file() else [f"{program}: no such script"]
    return [f"{program}: no check for this program; add one to tests/docs_examples.py"]


def _check_python_module(module: str, args: list[str]) -> list[str]:
    if module == "flask_webpubsub.emulator":
        from flask_webpubsub.emulator.__main__ import parse_arguments

        return _argparse_errors(lambda: parse_arguments(args), f"python -m {module}")
    if module == "pip":
        return _check_pip(args)
    if module in ("pytest", "sphinx"):
        return []
    if module == "build":
        return [] if set(args) <= {"--sdist", "--wheel"} else [f"python -m build {args}"]
    if module in ("benchmarks", "benchmarks.hardening", "example_app", "tests.test_bad_input"):
        path = ROOT / module.replace(".", "/")
        if not (path / "__main__.py").is_file() and not path.with_suffix(".py").is_file():
            return [f"python -m {module}: no such module in the repository"]
        return []
    return [f"python -m {module}: no check for this module; add one to tests/docs_examples.py"]


def _argparse_errors(parse: object, name: str) -> list[str]:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parse()  # type: ignore[operator]
    except SystemExit:
        return [f"{name}: {stderr.getvalue().strip().splitlines()[-1]}"]
    return []


def _check_pip(args: list[str]) -> list[str]:
    if args[:1] != ["install"]:
        return [f"pip {args[:1]}: only `pip install` is shown"]
    extras = set(metadata.metadata("flask-webpubsub").get_all("Provides-Extra") or ())
    found = []
    for requirement in args[1:]:
        if requirement.startswith("-") and requirement not in ("-e", "--editable"):
            continue
        match = re.fullmatch(r"(flask-webpubsub|\.|dist/\S+\.whl)(\[([\w,-]+)])?", requirement)
        if not match:
            if requirement not in ("-e", "--editable"):
                found.append(f"pip install {requirement}: not flask-webpubsub, a checkout or a "
                             "wheel in dist/")
            continue
        unknown = set((match.group(3) or "").split(",")) - extras - {""}
        if unknown:
            found.append(f"pip install {requirement}: no extra {sorted(unknown)} "
                         f"(the extras are {sorted(extras)})")
    return found


def _check_flask(args: list[str]) -> list[str]:
    import click

    from flask_webpubsub.cli import webpubsub_cli

    parser = argparse.ArgumentParser(prog="flask", add_help=False)
    parser.add_argument("--app")
    _, rest = parser.parse_known_args(args)
    if not rest:
        return ["flask: no command"]
    if rest[0] == "run":
        return []
    if rest[0] != "webpubsub" or len(rest) < 2:
        return [f"flask {rest[0]}: not a command of this package"]
    command = webpubsub_cli.commands.get(rest[1])
    if command is None:
        return [f"flask webpubsub {rest[1]}: no such command"]
    try:
        command.make_context(f"flask webpubsub {rest[1]}", rest[2:])
    except click.ClickException as exc:
        return [f"flask webpubsub {rest[1]}: {exc.format_message()}"]
    return []


def _check_options_in_help(program: str, args: list[str]) -> list[str]:
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / program), "--help"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [f"{program} {arg}: not an option of {program} --help"
            for arg in args
            if arg.startswith("--") and not re.search(rf"{re.escape(arg.split('=')[0])}\b",
                                                      help_text)]


#: The modules whose docstrings the API reference pages show (docs/api.rst, docs/core.rst).
DOCUMENTED_MODULES = [
    "flask_webpubsub", "flask_webpubsub.config", "flask_webpubsub.testing",
    "flask_webpubsub.pytest_plugin", "flask_webpubsub.emulator", "flask_webpubsub.core",
    *(f"flask_webpubsub.core.{name}" for name in (
        "wire", "jsoncodec", "request", "signature", "entra", "state", "payload", "events",
        "reply", "errors", "endpoint", "tokens", "service", "entra_issuer",
    )),
]


def _documented_objects() -> Iterator[tuple[str, object]]:
    """Every module, class, function and method of the documented modules, by name."""
    seen: set[int] = set()
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        queue: list[tuple[str, object]] = [(module_name, module)]
        queue += [(f"{module_name}.{name}", value) for name, value in vars(module).items()
                  if not name.startswith("_") and (inspect.isclass(value) or callable(value))
                  and getattr(value, "__module__", "").startswith("flask_webpubsub")]
        while queue:
            name, obj = queue.pop(0)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield name, obj
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    value = value.fget if isinstance(value, property) else value
                    if (not member.startswith("_") or member == "__init__") and callable(value):
                        queue.append((f"{name}.{member}", value))


def docstring_examples() -> list[tuple[str, str]]:
    """The ``::`` literal blocks of the documented docstrings: (object name, code)."""
    found = []
    for name, obj in _documented_objects():
        lines = (inspect.getdoc(obj) or "").splitlines()
        for index, line in enumerate(lines):
            if not line.rstrip().endswith("::"):
                continue
            indent = len(line) - len(line.lstrip())
            block: list[str] = []
            for following in lines[index + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following)
            found.append((name, textwrap.dedent("\n".join(block)).strip() + "\n"))
    return found


def docstring_problems(code: str, name: str) -> list[str]:
    """What is wrong with a docstring snippet: a shell command (``python -m ...``, ``flask
    ...``) is checked as a console command, anything else must compile as Python (a top-level
    ``await`` allowed)."""
    if code.startswith(("python -m ", "flask ", "pip ")):
        return [f"{name}: {problem}" for line in code.splitlines() if line.strip()
                for problem in check_command(shlex.split(line))]
    try:
        compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as error:
        return [f"{name}: {error}"]
    return []


def all_examples() -> Iterator[Example]:
    for page in pages():
        yield from examples(page)
