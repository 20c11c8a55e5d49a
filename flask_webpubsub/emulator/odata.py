"""The OData ``filter`` of the REST send and group operations, parsed and type-checked once.

The grammar is the service's subset ("OData filter syntax in the Azure Web PubSub service"):
identifiers ``userId``, ``connectionId`` (strings) and ``groups`` (a collection); ``and``, ``or``,
``not``; ``eq ne gt ge lt le``; ``in`` with a parenthesised list or ``groups``; string, integer,
boolean and ``null`` literals (``''`` escapes a quote); and the functions ``tolower``,
``toupper``, ``trim``, ``substring``, ``concat``, ``indexof``, ``length``, ``startswith``,
``endswith`` and ``contains``. Precedence, loosest first: ``or``, ``and``, comparisons, ``not``.

:func:`parse_filter` raises :class:`FilterError` (a ``ValueError``) with a reason the REST API
returns as a 400, so a filter is rejected before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol, TypeAlias

__all__ = ["FilterError", "FilterTarget", "parse_filter"]

Value: TypeAlias = "str | int | bool | frozenset[str] | tuple[Value, ...] | None"


class FilterTarget(Protocol):
    """What a filter looks at: one connection."""

    @property
    def connection_id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def groups(self) -> Collection[str]: ...


class FilterError(ValueError):
    """The filter is not valid: the message says where and why."""


_MAX_LENGTH = 10_000
_MAX_DEPTH = 100

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<int>[+-]?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),]))"
)
_COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", *_COMPARISONS}

# Static types: "bool", "string" (which may be null at run time), "int", "null", "collection",
# and "list" (a parenthesised list of constants, only valid on the right of ``in``).
Evaluator = Callable[[FilterTarget], Value]


@dataclass(frozen=True)
class _Node:
    type: str
    evaluate: Evaluator
    #: Written in parentheses: ``('a')`` on the right of ``in`` is a one-item list.
    grouped: bool = False


@dataclass(frozen=True)
class _Token:
    kind: str  # string, int, name, punct, end
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            start = len(text) - len(text[position:].lstrip())
            raise FilterError(f"Invalid syntax at position {start}: unexpected {text[start]!r}.")
        kind = match.lastgroup or "punct"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _string_value(node: _Node) -> Callable[[FilterTarget], str | None]:
    evaluate = node.evaluate
    return lambda target: evaluate(target)  # type: ignore[return-value]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------------

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def keyword(self) -> str | None:
        token = self.current
        return token.text.lower() if token.kind == "name" else None

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        if self.current.text != text:
            self.fail(f"expected {text!r}")
        self.advance()

    def fail(self, reason: str) -> None:
        token = self.current
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise FilterError(f"Invalid syntax at position {token.position}: {reason}, found {found}.")

    # -- grammar -------------------------------------------------------------------------------

    def parse(self) -> _Node:
        node = self.or_expression()
        if self.current.kind != "end":
            self.fail("expected the end of the filter")
        _require(node, "bool", "the filter")
        return node

    def or_expression(self) -> _Node:
        node = self.and_expression()
        while self.keyword() == "or":
            self.advance()
            node = _logical(node, self.and_expression(), "or")
        return node

    def and_expression(self) -> _Node:
        node = self.comparison()
        while self.keyword() == "and":
            self.advance()
            node = _logical(node, self.comparison(), "and")
        return node

    def comparison(self) -> _Node:
        left = self.unary()
        operator = self.keyword()
        if operator in _COMPARISONS:
            self.advance()
            return _compare(left, operator, self.unary())
        if operator == "in":
            self.advance()
            return _membership(left, self.unary())
        return left

    def unary(self) -> _Node:
        if self.keyword() == "not":
            self.advance()
            operand = self.unary()
            _require(operand, "bool", "the operand of 'not'")
            evaluate = operand.evaluate
            return _Node("bool", lambda target: not evaluate(target))
        return self.primary()

    def primary(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise FilterError("The filter is nested too deeply.")
        try:
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> _Node:
        token = self.current
        if token.text == "(":
            self.advance()
            items = [self.or_expression()]
            while self.current.text == ",":
                self.advance()
                items.append(self.or_expression())
            self.expect(")")
            if len(items) == 1:
                return _Node(items[0].type, items[0].evaluate, grouped=True)
            return _list(items)
        if token.kind == "string":
            self.advance()
            value: Value = token.text[1:-1].replace("''", "'")
            return _Node("string", lambda target: value)
        if token.kind == "int":
            self.advance()
            number = int(token.text)
            return _Node("int", lambda target: number)
        if token.kind != "name":
            self.fail("expected an expression")
        name = token.text.lower()
        self.advance()
        if self.current.text == "(" and name not in _KEYWORDS:
            return self.function(name, token)
        if name in ("true", "false"):
            flag = name == "true"
            return _Node("bool", lambda target: flag)
        if name == "null":
            return _Node("null", lambda target: None)
        if name == "userid":
            return _Node("string", lambda target: target.user_id)
        if name == "connectionid":
            return _Node("string", lambda target: target.connection_id)
        if name == "groups":
            return _Node("collection", lambda target: frozenset(target.groups))
        raise FilterError(
            f"Invalid syntax at position {token.position}: unknown identifier {token.text!r}; "
            "use userId, connectionId or groups."
        )

    def function(self, name: str, token: _Token) -> _Node:
        self.expect("(")
        arguments = [self.or_expression()]
        while self.current.text == ",":
            self.advance()
            arguments.append(self.or_expression())
        self.expect(")")
        builder = _FUNCTIONS.get(name)
        if builder is None:
            raise FilterError(f"Unknown function {token.text!r} at position {token.position}.")
        return builder(token.text, arguments)


def _require(node: _Node, expected: str, what: str) -> None:
    if node.type != expected:
        raise FilterError(f"Invalid type for {what}: type '{node.type}', expect '{expected}'.")


def _logical(left: _Node, right: _Node, operator: str) -> _Node:
    _require(left, "bool", f"the left operand of '{operator}'")
    _require(right, "bool", f"the right operand of '{operator}'")
    a, b = left.evaluate, right.evaluate
    if operator == "and":
        return _Node("bool", lambda target: bool(a(target)) and bool(b(target)))
    return _Node("bool", lambda target: bool(a(target)) or bool(b(target)))


_SCALARS = {"string", "int", "bool", "null"}


def _compare(left: _Node, operator: str, right: _Node) -> _Node:
    if left.type not in _SCALARS or right.type not in _SCALARS:
        raise FilterError(
            f"Invalid operands for '{operator}': types '{left.type}' and '{right.type}'."
        )
    kinds = {left.type, right.type} - {"null"}
    if len(kinds) > 1:
        raise FilterError(
            f"Cannot compare '{left.type}' with '{right.type}' using '{operator}'."
        )
    compare = _COMPARISONS[operator]
    a, b = left.evaluate, right.evaluate
    if operator in ("eq", "ne"):
        return _Node("bool", lambda target: compare(a(target), b(target)))

    def ordered(target: FilterTarget) -> bool:
        x, y = a(target), b(target)
        if x is None or y is None:
            return False
        return compare(x, y)

    return _Node("bool", ordered)


def _list(items: list[_Node]) -> _Node:
    for item in items:
        if item.type not in _SCALARS:
            raise FilterError(f"A list may only hold constants and strings, not '{item.type}'.")
    evaluators = [item.evaluate for item in items]
    return _Node("list", lambda target: tuple(e(target) for e in evaluators))


def _membership(left: _Node, right: _Node) -> _Node:
    if left.type not in _SCALARS:
        raise FilterError(f"Invalid left operand for 'in': type '{left.type}'.")
    if right.type not in ("list", "collection"):
        if right.type in _SCALARS and right.grouped:  # ('x'): a one-item list
            right = _list([right])
        else:
            raise FilterError(
                "The right operand of 'in' must be a list in parentheses or 'groups'."
            )
    a, b = left.evaluate, right.evaluate
    return _Node("bool", lambda target: a(target) in b(target))  # type: ignore[operator]


def _arity(name: str, arguments: list[_Node], *counts: int) -> None:
    if len(arguments) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise FilterError(f"The function {name} takes {expected} arguments, not {len(arguments)}.")


def _string_function(
    operation: Callable[[str], Value], result: str
) -> Callable[[str, list[_Node]], _Node]:
    def build(name: str, arguments: list[_Node]) -> _Node:
        _arity(name, arguments, 1)
        argument = arguments[0]
        if argument.type not in ("string", "null"):
            _require(argument, "string", f"the argument of {name}")
        value = _string_value(argument)

        def evaluate(target: FilterTarget) -> Value:
            text = value(target)
            return None if text is None else operation(text)

        return _Node(result, evaluate)

    return build


def _two_strings(
    operation: Callable[[str, str], Value], result: str
) -> Callable[[str, list[_Node]], _Node]:
    def build(name: str, arguments: list[_Node]) -> _Node:
        _arity(name, arguments, 2)
        for argument in arguments:
            if argument.type not in ("string", "null"):
                _require(argument, "string", f"the arguments of {name}")
        first, second = _string_value(arguments[0]), _string_value(arguments[1])

        def evaluate(target: FilterTarget) -> Value:
            x, y = first(target), second(target)
            if x is None or y is None:
                return False if result == "bool" else None
            return operation(x, y)

        return _Node(result, evaluate)

    return build


def _length(name: str, arguments: list[_Node]) -> _Node:
    _arity(name, arguments, 1)
    argument = arguments[0]
    if argument.type not in ("string", "null", "collection"):
        _require(argument, "string", f"the argument of {name}")
    evaluate = argument.evaluate

    def length(target: FilterTarget) -> Value:
        value = evaluate(target)
        return None if value is None else len(value)  # type: ignore[arg-type]

    return _Node("int", length)


def _int(value: Value) -> int:
    return value if isinstance(value, int) else 0


def _substring(name: str, arguments: list[_Node]) -> _Node:
    _arity(name, arguments, 2, 3)
    if arguments[0].type not in ("string", "null"):
        _require(arguments[0], "string", f"the first argument of {name}")
    for argument in arguments[1:]:
        _require(argument, "int", f"the position arguments of {name}")
    text = _string_value(arguments[0])
    start = arguments[1].evaluate
    count = arguments[2].evaluate if len(arguments) == 3 else None

    def evaluate(target: FilterTarget) -> Value:
        value = text(target)
        if value is None:
            return None
        begin = max(_int(start(target)), 0)
        if count is None:
            return value[begin:]
        return value[begin : begin + max(_int(count(target)), 0)]

    return _Node("string", evaluate)


_FUNCTIONS: dict[str, Callable[[str, list[_Node]], _Node]] = {
    "tolower": _string_function(str.lower, "string"),
    "toupper": _string_function(str.upper, "string"),
    "trim": _string_function(str.strip, "string"),
    "length": _length,
    "substring": _substring,
    "concat": _two_strings(lambda a, b: a + b, "string"),
    "indexof": _two_strings(lambda a, b: a.find(b), "int"),
    "startswith": _two_strings(str.startswith, "bool"),
    "endswith": _two_strings(str.endswith, "bool"),
    "contains": _two_strings(lambda a, b: b in a, "bool"),
}


def parse_filter(text: str) -> Callable[[FilterTarget], bool]:
    """Compile a filter into a predicate over connections; raises :class:`FilterError`."""
    if len(text) > _MAX_LENGTH:
        raise FilterError(f"The filter is longer than {_MAX_LENGTH} characters.")
    if not text.strip():
        raise FilterError("The filter is empty.")
    node = _Parser(text).parse()
    evaluate = node.evaluate
    return lambda target: bool(evaluate(target))
