"""What a client's roles allow it to do with a group: the literal roles
(``webpubsub.joinLeaveGroup[.<group>]``, ``webpubsub.sendToGroup[.<group>]``) and the wildcard
group roles (``webpubsub.joinLeaveGroups.<pattern>``, ``webpubsub.sendToGroups.<pattern>``).

The pattern syntax is the service's (concept-wildcard-group-roles.md): ``?`` is one character but
``.``, ``*`` any run of characters without ``.``, ``**`` any run at all, ``\\`` escapes ``\\``,
``*`` and ``?``; ``.`` separates a hierarchy. A pattern with more than five ``*`` in all, or a
``\\`` before anything else, is invalid and allows nothing. Matching walks the pattern once per
character of the group name (no backtracking), so a client's group name, however long, costs
time in proportion to it.
"""

from __future__ import annotations

import functools
from collections.abc import Set

#: The permissions a role may grant, on every group, on one, or on those a pattern matches.
PERMISSIONS = ("joinLeaveGroup", "sendToGroup")
#: The most ``*`` a pattern may have (``**`` counts two).
MAX_ASTERISKS = 5

# Pattern tokens: a literal character (itself), or one of these.
_ONE = "?"
_RUN = "*"
_ANY_RUN = "**"
#: A pattern's tokens, each a 1-tuple for a literal character (so that ``*`` the character and
#: ``*`` the wildcard differ), or a wildcard name.
Token = tuple[str] | str


def allows(roles: Set[str], permission: str, group: str) -> bool:
    """Whether ``roles`` allow ``permission`` (joinLeaveGroup, sendToGroup) on ``group``."""
    role = f"webpubsub.{permission}"
    if role in roles or f"{role}.{group}" in roles:
        return True
    prefix = f"webpubsub.{permission}s."
    return any(
        role.startswith(prefix) and _matches(_tokens(role[len(prefix):]), group)
        for role in roles
    )


def is_valid_pattern(pattern: str) -> bool:
    return _tokens(pattern) is not None


@functools.lru_cache(maxsize=4096)
def _tokens(pattern: str) -> tuple[Token, ...] | None:
    """A pattern's tokens; None when it is invalid."""
    if not pattern or pattern.count("*") > MAX_ASTERISKS:
        return None
    tokens: list[Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 == len(pattern) or pattern[index + 1] not in "\\*?":
                return None
            tokens.append((pattern[index + 1],))
            index += 2
        elif char == "*":
            rest = pattern[index:]
            run = len(rest) - len(rest.lstrip("*"))
            tokens.append(_ANY_RUN if run >= 2 else _RUN)
            index += run
        else:
            tokens.append(_ONE if char == "?" else (char,))
            index += 1
    return tuple(tokens)


def _matches(tokens: tuple[Token, ...] | None, name: str) -> bool:
    """Whether the whole ``name`` matches: the set of pattern positions reached so far, moved
    along one character at a time."""
    if tokens is None:
        return False
    end = len(tokens)

    def closure(positions: set[int]) -> set[int]:
        # A run may be empty: being before it is being after it too.
        reached = set(positions)
        for position in sorted(positions):
            while position < end and tokens[position] in (_RUN, _ANY_RUN):
                position += 1
                reached.add(position)
        return reached

    positions = closure({0})
    for char in name:
        following: set[int] = set()
        for position in positions:
            if position == end:
                continue
            token = tokens[position]
            if token == _ANY_RUN or (token == _RUN and char != "."):
                following.add(position)
            elif (token == _ONE and char != ".") or token == (char,):
                following.add(position + 1)
        if not following:
            return False
        positions = closure(following)
    return end in positions
