"""The ``ce-signature`` codec: HMAC-SHA256 of the connection id with each access key.

Pure functions, no web framework: the extension verifies with them, and the testing helpers and
the emulator sign with them, so the two sides can never disagree.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterable, Sequence

_PREFIX = "sha256="


def _digest(key: bytes, connection_id: bytes) -> str:
    return hmac.digest(key, connection_id, "sha256").hex()


@functools.lru_cache(maxsize=4096)
def _expected(connection_id: str, keys: tuple[str, ...]) -> tuple[bytes, ...]:
    # Every event of a connection carries the same signature: remember the last few thousand
    # connections' digests instead of computing an HMAC per key for every event.
    message = connection_id.encode()
    return tuple(_digest(key.encode(), message).encode() for key in keys)


def sign(connection_id: str, keys: Iterable[str]) -> str:
    """Return the ``ce-signature`` value the service sends: one ``sha256=<hex>`` per key."""
    message = connection_id.encode()
    return ",".join(_PREFIX + _digest(key.encode(), message) for key in keys)


def verify(connection_id: str, signatures: Iterable[str], keys: Sequence[str]) -> bool:
    """Whether any signature entry, from any header line, matches any key.

    ``signatures`` are the raw header values (a header may arrive several times, each a
    comma-separated list). Fails closed: no keys, no entries or a malformed entry never match.
    """
    if not keys:
        return False
    expected = _expected(connection_id, tuple(keys))
    for value in signatures:
        for entry in value.split(","):
            entry = entry.strip()
            if entry[: len(_PREFIX)].lower() != _PREFIX:
                continue
            candidate = entry[len(_PREFIX) :].lower().encode("ascii", "replace")
            for digest in expected:
                if hmac.compare_digest(candidate, digest):
                    return True
    return False
