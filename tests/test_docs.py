"""Every code example of the documentation runs, and every command it shows is one the program
accepts. How each kind of block is checked: ``tests/docs_examples.py``."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_webpubsub.config import CONFIG_KEYS
from flask_webpubsub.emulator import EmulatorThread

from . import secrets_guard
from .docs_examples import (
    DOCS,
    ROOT,
    Example,
    all_examples,
    check_command,
    commands,
    docstring_examples,
    docstring_problems,
    problems,
)

pytest_plugins = ["pytester"]

EXAMPLES = list(all_examples())


def _id(example: Example) -> str:
    return example.where


def _page_id(page: object) -> str:
    return str(page).removeprefix(f"{ROOT}/")


PYTHON_PAGES = sorted({e.page for e in EXAMPLES if e.language == "python" and e.marker is None})
PYTEST_MODULES = [e for e in EXAMPLES if e.marker == "pytest"]
CONSOLE_BLOCKS = [e for e in EXAMPLES if e.language == "console"]
NGINX_BLOCKS = [e for e in EXAMPLES if e.language == "nginx"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    """The Web PubSub service the examples' ``WEBPUBSUB_CONNECTION_STRING`` names."""
    with EmulatorThread() as emulator:
        secrets_guard.KNOWN_KEYS.add(emulator.endpoint.access_key or "")
        yield emulator


def test_every_block_is_an_example_of_a_known_kind() -> None:
    assert [problem for example in EXAMPLES for problem in problems(example)] == []
    assert PYTHON_PAGES, "no python examples found: is the docs folder where it was?"


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_page_id)
def test_python_examples_run_in_page_order(
    page: object, emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBPUBSUB_CONNECTION_STRING", emulator.connection_string)
    name = "docs_" + re.sub(r"\W", "_", _page_id(page).removesuffix(".md"))
    module = types.ModuleType(name)
    module.__file__ = str(page)
    monkeypatch.setitem(sys.modules, name, module)
    for example in EXAMPLES:
        if example.page == page and example.language == "python" and example.marker is None:
            # Padded so that a traceback names the line of the page.
            code = compile("\n" * example.line + example.code, str(page), "exec")
            exec(code, module.__dict__)  # noqa: S102 - the docs' own examples


@pytest.mark.parametrize("example", PYTEST_MODULES, ids=_id)
def test_pytest_examples_pass(example: Example, pytester: pytest.Pytester) -> None:
    tests = [node for node in ast.parse(example.code).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    pytester.makepyfile(**{f"test_docs_example_{example.line}": example.code})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=len(tests))


@pytest.mark.parametrize("example", CONSOLE_BLOCKS, ids=_id)
def test_console_commands_are_accepted_by_their_programs(example: Example) -> None:
    found = commands(example)
    assert found, f"{example.where}: a console block with no `$ ` command"
    assert [f"{example.where}: {problem}" for words in found for problem in check_command(words)
            ] == []


@pytest.mark.parametrize("example", NGINX_BLOCKS, ids=_id)
def test_nginx_configuration_is_accepted_by_nginx(example: Example, tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{example.code}\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, f"{example.where}: {result.stderr}"


DOCSTRING_EXAMPLES = docstring_examples()


@pytest.mark.parametrize(
    ("name", "code"), DOCSTRING_EXAMPLES, ids=[name for name, _ in DOCSTRING_EXAMPLES]
)
def test_docstring_snippets_are_python(name: str, code: str) -> None:
    assert docstring_problems(code, name) == []


def test_docstring_snippets_are_found() -> None:
    assert "flask_webpubsub.Hub" in {name for name, _ in DOCSTRING_EXAMPLES}
    assert docstring_problems("x = (\n", "broken") != []
    assert docstring_problems("python -m flask_webpubsub.emulator --prot 1\n", "typo") != []


# --- the generated reference pages -------------------------------------------------------------


def test_the_configuration_reference_has_every_key_with_its_default() -> None:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        extension = importlib.import_module("webpubsub_sphinx")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    text = extension.config_reference()
    for key, (default, _) in CONFIG_KEYS.items():
        assert f"````{{confval}} {key}\n:default: `{default!r}`\n" in text


# --- the checks themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("python -m flask_webpubsub.emulator --port 8080 --hub chat", None),
        ("python -m flask_webpubsub.emulator --prot 8080", "unrecognized arguments: --prot"),
        ("flask --app chat webpubsub token --user-id alice --group lobby", None),
        ("flask webpubsub tokens", "no such command"),
        ("flask webpubsub sign --connectionid c1", "--connectionid"),
        ('pip install "flask-webpubsub[emulator,identity]"', None),
        ('pip install "flask-webpubsub[emulater]"', "no extra ['emulater']"),
        ("granian --interface wsgi --workers 2 app:app", None),
        ("granian --worker 2 app:app", "--worker: not an option"),
        ("./run-tests.sh", None),
        ("./run-everything.sh", "no such script"),
        ("curl http://127.0.0.1", "no check for this program"),
    ],
)
def test_command_checks(command: str, problem: str | None) -> None:
    [words] = commands(Example(DOCS / "x.md", 1, "console", f"$ {command}\n", None))
    found = check_command(words)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert problem in found[0]
