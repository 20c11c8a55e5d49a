"""A session-wide check that no access key or full token ever reaches a log or the CLI.

Every log record of the run (the library's at DEBUG), every test's captured output and every CLI
invocation's output are scanned at the end of the session; a leak fails the run and names the
test and the kind of secret, never the secret itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

#: A JWT: three base64url parts, the first two JSON objects ("eyJ" is base64 of '{"').
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")

#: Keys the tests use or generate; fixtures that create keys add theirs.
KNOWN_KEYS: set[str] = set()


def find_leaks(text: str, keys: Iterable[str]) -> list[str]:
    """The kinds of secret in ``text``: "access key" and/or "token"."""
    found = []
    if any(key and key in text for key in keys):
        found.append("access key")
    if JWT.search(text):
        found.append("token")
    return found


class Recorder(logging.Handler):
    """Keeps every record of the run, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[tuple[str, str]] = []
        self.current_test = "(collection)"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append((self.current_test, self.format(record)))
        except Exception:  # a record that cannot be formatted is a bug elsewhere
            self.handleError(record)
