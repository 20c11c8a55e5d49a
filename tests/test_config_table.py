"""The README's configuration table and ``flask_webpubsub.config.CONFIG_KEYS`` stay in step: the
same ``WEBPUBSUB_*`` keys, with the same defaults.

The table is found by its rows, not its heading or layout: the Markdown table with the most rows
whose first cell is a backticked ``WEBPUBSUB_`` key (the example app's table of environment
variables names one such key too). A documented default is read as the README writes it:
``None``, ``False``, a number (``1,114,112``), a backticked literal (`` `[]` ``,
`` `/eventhandler` ``), each optionally followed by a parenthesised remark; anything else is prose
for a default that is computed or required (``required``, ``the endpoint's host``), which the
registry writes as None.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from flask_webpubsub.config import CONFIG_KEYS

README = Path(__file__).resolve().parent.parent / "README.md"

KEY_CELL = re.compile(r"`(WEBPUBSUB_[A-Z0-9_]+)`")
#: A cell separator: a pipe that Markdown does not escape.
PIPE = re.compile(r"(?<!\\)\|")


class Prose:
    """A default the README describes in words instead of a value."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"prose {self.text!r}"


def table_rows(markdown: str) -> list[list[tuple[str, str]]]:
    """Every Markdown table's ``WEBPUBSUB_`` rows, as (key, default cell), table by table."""
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


def differences(rows: list[tuple[str, str]], registry: Mapping[str, tuple[Any, str]]) -> list[str]:
    """How the table and the registry disagree; empty when they agree."""
    found = []
    documented: dict[str, str] = {}
    for key, cell in rows:
        if key in documented:
            found.append(f"{key}: in the README table twice")
        documented[key] = cell
    found += [f"{key}: in CONFIG_KEYS, not in the README table"
              for key in registry if key not in documented]
    found += [f"{key}: in the README table, not in CONFIG_KEYS"
              for key in documented if key not in registry]
    for key, cell in documented.items():
        if key not in registry:
            continue
        default = registry[key][0]
        value = documented_default(cell)
        if isinstance(value, Prose):
            if default is not None:
                found.append(f"{key}: the README describes the default as {cell!r}; "
                             f"CONFIG_KEYS says {default!r}")
        elif type(value) is not type(default) or value != default:
            found.append(f"{key}: the README says the default is {cell!r}; "
                         f"CONFIG_KEYS says {default!r}")
    return found


def test_the_readme_table_lists_every_key_of_the_registry_with_its_default() -> None:
    assert differences(config_table(README.read_text()), CONFIG_KEYS) == []


# --- the check itself ------------------------------------------------------------------------

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
| `WEBPUBSUB_KEYS` | `[]` | More keys |
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
         "WEBPUBSUB_FAST: in CONFIG_KEYS, not in the README table"),
        (("| `WEBPUBSUB_FAST` |", "| `WEBPUBSUB_FASTER` | `True` | More |\n| `WEBPUBSUB_FAST` |"),
         "WEBPUBSUB_FASTER: in the README table, not in CONFIG_KEYS"),
        (("`/eventhandler`", "`/events`"),
         "WEBPUBSUB_PATH: the README says the default is '`/events`'; "
         "CONFIG_KEYS says '/eventhandler'"),
        (("1,114,112", "1,048,576"),
         "WEBPUBSUB_LIMIT: the README says the default is '1,048,576 (1 MiB + 64 KiB)'; "
         "CONFIG_KEYS says 1114112"),
        (("`False`", "None"),
         "WEBPUBSUB_FAST: the README says the default is 'None'; CONFIG_KEYS says False"),
        (("`[]`", "the endpoint's keys"),
         "WEBPUBSUB_KEYS: the README describes the default as \"the endpoint's keys\"; "
         "CONFIG_KEYS says []"),
        (("| `WEBPUBSUB_HUB` | required | The default hub |\n",
          "| `WEBPUBSUB_HUB` | required | The default hub |\n" * 2),
         "WEBPUBSUB_HUB: in the README table twice"),
    ],
    ids=["missing", "unknown", "string", "number", "None", "prose", "twice"],
)
def test_the_check_names_each_difference(edit: tuple[str, str], difference: str) -> None:
    old, new = edit
    assert old in TABLE
    assert differences(config_table(TABLE.replace(old, new, 1)), REGISTRY) == [difference]


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
        ("1,114,112 (1 MiB + 64 KiB)", 1114112),
        ("`30`", 30),
    ],
)
def test_documented_defaults_are_read_as_values(cell: str, value: Any) -> None:
    read = documented_default(cell)
    assert (type(read), read) == (type(value), value)


@pytest.mark.parametrize("cell", ["required", "the endpoint's host", "random per run"])
def test_defaults_in_words_are_prose(cell: str) -> None:
    assert isinstance(documented_default(cell), Prose)
