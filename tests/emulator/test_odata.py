"""The OData filter of the REST sends: the documented examples, precedence, and errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from flask_webpubsub.emulator.odata import FilterError, parse_filter


@dataclass
class Connection:
    connection_id: str
    user_id: str | None = None
    groups: set[str] = field(default_factory=set)


ALICE = Connection("c1", "alice", {"group1"})
BOB = Connection("c2", "user''1".replace("''", "'"), {"group1", "group2"})
ANON = Connection("123", None)
EVERYONE = [ALICE, BOB, ANON]


@pytest.mark.parametrize(
    ("text", "matching"),
    [
        ("userId eq 'alice'", ["c1"]),
        ("userId ne 'alice'", ["c2", "123"]),
        ("userId eq null", ["123"]),
        ("userId ne null", ["c1", "c2"]),
        ("connectionId ne '123'", ["c1", "c2"]),
        ("'group1' in groups", ["c1", "c2"]),
        ("'group1' in groups or 'group2' in groups", ["c1", "c2"]),
        ("userId in ('alice', 'zed') and 'group1' in groups", ["c1"]),
        ("userId eq 'alice' and connectionId ne '123'", ["c1"]),
        ("userId eq 'alice' and (not ('group1' in groups))", []),
        ("not ('group2' in groups)", ["c1", "123"]),
        ("userId eq 'user''1'", ["c2"]),
        ("length(userId) gt 3 and length(userId) le 5", ["c1"]),
        ("length(groups) eq 2", ["c2"]),
        ("tolower(toupper(userId)) eq 'alice'", ["c1"]),
        ("trim(concat(' ', userId)) eq 'alice'", ["c1"]),
        ("startswith(userId, 'al') or endswith(userId, '1')", ["c1", "c2"]),
        ("contains(userId, 'lic')", ["c1"]),
        ("indexof(userId, 'ice') eq 2", ["c1"]),
        ("substring(userId, 1, 3) eq 'lic'", ["c1"]),
        ("substring(userId, 2) eq 'ice'", ["c1"]),
        ("true", ["c1", "c2", "123"]),
        ("false or userId eq 'alice' and 'group2' in groups", []),
        ("USERID EQ 'alice'", ["c1"]),
        ("userId gt 'b'", ["c2"]),
    ],
)
def test_documented_forms(text: str, matching: list[str]) -> None:
    predicate = parse_filter(text)
    assert [c.connection_id for c in EVERYONE if predicate(c)] == matching


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("userId eq", "expected an expression"),
        ("userId", "expect 'bool'"),
        ("not length(userId) gt 5", "the operand of 'not'"),
        ("userId eq 1", "Cannot compare"),
        ("nickname eq 'a'", "unknown identifier"),
        ("shout(userId)", "Unknown function"),
        ("'a' in userId", "right operand of 'in'"),
        ("userId eq 'a' extra", "expected the end"),
        ("userId eq 'unterminated", "unexpected"),
        ("(" * 200 + "true" + ")" * 200, "nested too deeply"),
        ("length(userId, 1) eq 1", "takes 1 arguments"),
        ("groups eq 'a'", "Invalid operands"),
    ],
)
def test_invalid_filters_say_why(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text)
