"""The configuration reference and ``flask_webpubsub.config.CONFIG_KEYS`` stay in step.

The reference is a page of the docs site, ``docs/configuration.md``, whose ``{webpubsub-config}``
directive (``docs/_ext/webpubsub_sphinx.py``) generates a summary table and one entry per key
from the registry. These tests read what it generates as a reader would: the table's keys and
defaults, and each entry's default and meaning, must be the registry's, in its order. The README
links to that page instead of holding a table of its own, and any other table in the docs that
names a key (the example app's environment variables, say) gives its default as the registry
does. A key the docs or the README name in prose must exist.

A documented default is read as written: ``None``, ``False``, a number (``1,114,112``), a
backticked literal (`` `[]` ``, `` `'/eventhandler'` ``), each optionally followed by a
parenthesised remark; anything else is prose for a default that is computed, required or unset
(``required``, ``the endpoint's host``), which the registry writes as None.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flask_webpubsub.config import CONFIG_KEYS

from .docs_examples import DOCS, ROOT, pages

README = ROOT / "README.md"
CONFIGURATION = DOCS / "configuration.md"

#: A table's first cell naming a key: `` `KEY` ``, or the ``{confval}`KEY` `` role the
#: generated reference links it with.
KEY_CELL = re.compile(r"(?:\{confval\})?`(WEBPUBSUB_[A-Z0-9_]+)`")
#: A cell separator: a pipe that Markdown does not escape.
PIPE = re.compile(r"(?<!\\)\|")
#: Names that look like keys but are not: the prefix of the Entra ID keys, as prose names
#: them together (`WEBPUBSUB_ENTRA_*`), and an environment variable of the fuzzing tests.
NOT_KEYS = {"WEBPUBSUB_ENTRA_", "WEBPUBSUB_FUZZ_EXAMPLES"}


def sphinx_extension() -> ModuleType:
    """``docs/_ext/webpubsub_sphinx.py``, the module that generates the reference."""
    path = DOCS / "_ext" / "webpubsub_sphinx.py"
    spec = importlib.util.spec_from_file_location("webpubsub_sphinx", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Prose:
    """A default the docs describe in words instead of a value."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"prose {self.text!r}"


def table_rows(markdown: str) -> list[list[tuple[str, str]]]:
    """Every Markdown table's rows that name a ``WEBPUBSUB_`` key, as (key, default cell),
    table by table."""
    tables: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] | None = None
    for line in markdown.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            tables.append(current)
        cells = [cell.strip() for cell in PIPE.split(stripped.strip("|"))]
        key = KEY_CELL.fullmatch(cells[0])
        if key and len(cells) >= 2:
            current.append((key.group(1), cells[1]))
    return tables


def config_table(markdown: str) -> list[tuple[str, str]]:
    """The configuration table's rows: the table with the most ``WEBPUBSUB_`` keys."""
    return max(table_rows(markdown), key=len, default=[])


def documented_default(cell: str) -> Any:
    """The value a default cell documents, or :class:`Prose`."""
    value = re.sub(r"\s*\(.*\)$", "", cell).strip()
    if len(value) >= 2 and value.startswith("`") and value.endswith("`"):
        literal = value[1:-1]
        try:
            return ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            return literal
    if value in ("None", "True", "False"):
        return ast.literal_eval(value)
    if re.fullmatch(r"-?\d[\d,_]*", value):
        return int(value.replace(",", "").replace("_", ""))
    return Prose(cell)


def row_differences(
    rows: list[tuple[str, str]], registry: Mapping[str, tuple[Any, str]]
) -> list[str]:
    """How a table's rows disagree with the registry: a key twice, a key it does not have, a
    different default. Empty when they agree."""
    found = []
    documented: dict[str, str] = {}
    for key, cell in rows:
        if key in documented:
            found.append(f"{key}: in the table twice")
        documented[key] = cell
    found += [f"{key}: in the table, not in CONFIG_KEYS"
              for key in documented if key not in registry]
    for key, cell in documented.items():
        if key not in registry:
            continue
        default = registry[key][0]
        value = documented_default(cell)
        if isinstance(value, Prose):
            if default is not None:
                found.append(f"{key}: the table describes the default as {cell!r}; "
                             f"CONFIG_KEYS says {default!r}")
        elif type(value) is not type(default) or value != default:
            found.append(f"{key}: the table says the default is {cell!r}; "
                         f"CONFIG_KEYS says {default!r}")
    return found


def differences(rows: list[tuple[str, str]], registry: Mapping[str, tuple[Any, str]]) -> list[str]:
    """How a configuration table disagrees with the registry, which it must list whole."""
    documented = {key for key, _ in rows}
    return [*row_differences(rows, registry),
            *(f"{key}: in CONFIG_KEYS, not in the table"
              for key in registry if key not in documented)]


def entries(markdown: str) -> dict[str, tuple[str, str]]:
    """The reference's ``confval`` entries: key -> (default cell, meaning)."""
    found = re.findall(r"^````\{confval\} (\S+)\n:default: ([^\n]*)\n\n(.*?)\n````$", markdown,
                       re.MULTILINE | re.DOTALL)
    return {key: (default, meaning) for key, default, meaning in found}


# --- the reference -----------------------------------------------------------------------------


def test_the_configuration_page_is_generated_from_the_registry() -> None:
    assert "```{webpubsub-config}\n```" in CONFIGURATION.read_text()
    assert re.search(r"^configuration$", (DOCS / "index.md").read_text(), re.MULTILINE), (
        "the configuration reference is not in the site's table of contents")


def test_its_table_lists_every_key_of_the_registry_with_its_default_in_order() -> None:
    rows = config_table(sphinx_extension().config_reference())
    assert differences(rows, CONFIG_KEYS) == []
    assert [key for key, _ in rows] == list(CONFIG_KEYS)


def test_each_key_has_an_entry_with_its_default_and_meaning() -> None:
    extension = sphinx_extension()
    documented = entries(extension.config_reference())
    assert list(documented) == list(CONFIG_KEYS)
    for key, (default, meaning) in CONFIG_KEYS.items():
        cell, text = documented[key]
        value = documented_default(cell)
        assert (type(value), value) == (type(default), default), key
        assert text == extension.markdown_text(meaning)


def test_the_readme_links_to_the_reference_and_holds_no_table_of_its_own() -> None:
    readme = README.read_text()
    assert "(docs/configuration.md)" in readme
    assert [row for rows in table_rows(readme) for row in rows] == []


@pytest.mark.parametrize("page", [README, *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_other_tables_that_name_a_key_give_its_default(page: Path) -> None:
    assert [f"{page.name}: {difference}" for rows in table_rows(page.read_text())
            for difference in row_differences(rows, CONFIG_KEYS)] == []


def test_every_key_the_docs_name_exists() -> None:
    named = {(key, page.relative_to(ROOT)) for page in [README, *pages()]
             for key in re.findall(r"WEBPUBSUB_[A-Z0-9_]+", page.read_text())}
    assert sorted(f"{page}: {key}" for key, page in named
                  if key not in CONFIG_KEYS and key not in NOT_KEYS) == []


# --- the checks themselves ---------------------------------------------------------------------

REGISTRY: dict[str, tuple[Any, str]] = {
    "WEBPUBSUB_HUB": (None, "The default hub (required)."),
    "WEBPUBSUB_PATH": ("/eventhandler", "Where events go."),
    "WEBPUBSUB_KEYS": ([], "More keys."),
    "WEBPUBSUB_FAST": (False, "Faster."),
    "WEBPUBSUB_LIMIT": (1114112, "Largest body."),
}

TABLE = """\
Some prose that mentions `WEBPUBSUB_HUB`.

| key | default | meaning |
|:----|:-------:|---------|
| `WEBPUBSUB_HUB` | required | The default hub |
|`WEBPUBSUB_PATH`|`/eventhandler`| Where a \\| pipe goes |
| {confval}`WEBPUBSUB_KEYS` | `[]` | More keys |
| `WEBPUBSUB_FAST` | `False` | Faster |
| `WEBPUBSUB_LIMIT` | 1,114,112 (1 MiB + 64 KiB) | Largest body |

| variable | default | meaning |
| --- | --- | --- |
| `WEBPUBSUB_OTHER` | unset | Another table's key |
"""


def test_the_check_passes_a_table_in_step_with_the_registry() -> None:
    assert [key for key, _ in config_table(TABLE)] == list(REGISTRY)
    assert differences(config_table(TABLE), REGISTRY) == []


@pytest.mark.parametrize(
    ("edit", "difference"),
    [
        (("| `WEBPUBSUB_FAST` | `False` | Faster |\n", ""),
         "WEBPUBSUB_FAST: in CONFIG_KEYS, not in the table"),
        (("| `WEBPUBSUB_FAST` |", "| `WEBPUBSUB_FASTER` | `True` | More |\n| `WEBPUBSUB_FAST` |"),
         "WEBPUBSUB_FASTER: in the table, not in CONFIG_KEYS"),
        (("`/eventhandler`", "`/events`"),
         "WEBPUBSUB_PATH: the table says the default is '`/events`'; "
         "CONFIG_KEYS says '/eventhandler'"),
        (("1,114,112", "1,048,576"),
         "WEBPUBSUB_LIMIT: the table says the default is '1,048,576 (1 MiB + 64 KiB)'; "
         "CONFIG_KEYS says 1114112"),
        (("`False`", "None"),
         "WEBPUBSUB_FAST: the table says the default is 'None'; CONFIG_KEYS says False"),
        (("`[]`", "the endpoint's keys"),
         "WEBPUBSUB_KEYS: the table describes the default as \"the endpoint's keys\"; "
         "CONFIG_KEYS says []"),
        (("| `WEBPUBSUB_HUB` | required | The default hub |\n",
          "| `WEBPUBSUB_HUB` | required | The default hub |\n" * 2),
         "WEBPUBSUB_HUB: in the table twice"),
    ],
    ids=["missing", "unknown", "string", "number", "None", "prose", "twice"],
)
def test_the_check_names_each_difference(edit: tuple[str, str], difference: str) -> None:
    old, new = edit
    assert old in TABLE
    assert differences(config_table(TABLE.replace(old, new, 1)), REGISTRY) == [difference]


def test_a_table_of_some_keys_need_not_list_them_all() -> None:
    [_, other] = table_rows(TABLE)
    assert row_differences(other, REGISTRY) == ["WEBPUBSUB_OTHER: in the table, not in CONFIG_KEYS"]
    assert row_differences(config_table(TABLE)[:2], REGISTRY) == []


def test_entries_are_read_from_the_generated_markdown() -> None:
    text = sphinx_extension().config_reference(REGISTRY)
    assert entries(text)["WEBPUBSUB_PATH"] == ("`'/eventhandler'`", "Where events go.")
    assert entries(text)["WEBPUBSUB_HUB"] == ("`None`", "The default hub (required).")
    assert list(entries(text)) == list(REGISTRY)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("None", None),
        ("None (on when a key is known)", None),
        ("None (`WebPubSubServiceClient`)", None),
        ("`None`", None),
        ("`False`", False),
        ("True", True),
        ("`[]`", []),
        ("`['*']`", ["*"]),
        ("`/eventhandler`", "/eventhandler"),
        ("`'/eventhandler'`", "/eventhandler"),
        ("1,114,112 (1 MiB + 64 KiB)", 1114112),
        ("`30`", 30),
    ],
)
def test_documented_defaults_are_read_as_values(cell: str, value: Any) -> None:
    read = documented_default(cell)
    assert (type(read), read) == (type(value), value)


@pytest.mark.parametrize("cell", ["required", "the endpoint's host", "random per run", "unset"])
def test_defaults_in_words_are_prose(cell: str) -> None:
    assert isinstance(documented_default(cell), Prose)
