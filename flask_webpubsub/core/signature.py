"""The ``ce-signature`` codec: HMAC-SHA256 of the connection id with each access key.

Pure functions, no web framework: the extension verifies with them, and the testing helpers and
the emulator sign with them, so the two sides can never disagree.

Verifying is the first thing done with a request anybody can send, so it is bounded before it
is correct: a header longer than the service ever sends is refused unread, at most
:data:`MAX_SIGNATURE_ENTRIES` entries are compared, and only connections whose signature matched
are remembered, so nothing unauthenticated grows memory.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterable, Sequence

_PREFIX = "sha256="
_ENTRY_LENGTH = len(_PREFIX) + 64
#: More entries than the service sends (one per access key; two keys, and room for more).
MAX_SIGNATURE_ENTRIES = 8
#: The longest ``ce-signature`` value (all header lines together) that is looked at.
MAX_SIGNATURE_LENGTH = MAX_SIGNATURE_ENTRIES * (_ENTRY_LENGTH + 2)
#: How many verified connections' digests are remembered.
_REMEMBERED = 4096

_verified: dict[tuple[str, tuple[str, ...]], tuple[bytes, ...]] = {}
_lock = threading.Lock()


def _digest(key: bytes, connection_id: bytes) -> str:
    return hmac.digest(key, connection_id, "sha256").hex()


def _expected(connection_id: str, keys: tuple[str, ...]) -> tuple[bytes, ...]:
    message = connection_id.encode()
    return tuple(_digest(key.encode(), message).encode() for key in keys)


def sign(connection_id: str, keys: Iterable[str]) -> str:
    """Return the ``ce-signature`` value the service sends: one ``sha256=<hex>`` per key."""
    message = connection_id.encode()
    return ",".join(_PREFIX + _digest(key.encode(), message) for key in keys)


def verify(connection_id: str, signatures: Iterable[str], keys: Sequence[str]) -> bool:
    """Whether any signature entry, from any header line, matches any key.

    ``signatures`` are the raw header values (a header may arrive several times, each a
    comma-separated list). Fails closed: no keys, no entries, a malformed entry or a header
    longer than :data:`MAX_SIGNATURE_LENGTH` never match.
    """
    if not keys:
        return False
    values = list(signatures)
    length = 0
    for value in values:
        length += len(value)
    if length > MAX_SIGNATURE_LENGTH:
        return False
    key_tuple = tuple(keys)
    # Every event of a connection carries the same signature: remember the digests of the last
    # few thousand connections that proved themselves, instead of an HMAC per key per event.
    expected = _verified.get((connection_id, key_tuple))
    remembered = expected is not None
    if expected is None:
        expected = _expected(connection_id, key_tuple)
    entries = 0
    for value in values:
        for entry in value.split(","):
            entries += 1
            if entries > MAX_SIGNATURE_ENTRIES:
                return False
            entry = entry.strip()
            if entry[: len(_PREFIX)].lower() != _PREFIX:
                continue
            candidate = entry[len(_PREFIX) :].lower().encode("ascii", "replace")
            for digest in expected:
                if hmac.compare_digest(candidate, digest):
                    if not remembered:
                        _remember((connection_id, key_tuple), expected)
                    return True
    return False


def _remember(key: tuple[str, tuple[str, ...]], digests: tuple[bytes, ...]) -> None:
    with _lock:
        if len(_verified) >= _REMEMBERED:
            del _verified[next(iter(_verified))]  # the oldest
        _verified[key] = digests
