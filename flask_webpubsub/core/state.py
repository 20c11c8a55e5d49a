"""The ``ce-connectionState`` codec: padded standard base64 of compact UTF-8 JSON of an object."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any

from .errors import InvalidStateError
from .jsoncodec import decode_json, encode_json

logger = logging.getLogger(__name__)

#: The header value that clears a connection's state.
EMPTY_STATE = "e30="
#: The longest ``ce-connectionState`` value a reply may set. The service documents no limit, but
#: every later event carries the header, and common servers refuse long header lines (gunicorn
#: at 8190 bytes, nginx's default buffers at 8 KiB): 4 KiB leaves room for the rest.
MAX_STATE_BYTES = 4096


class StateTooLargeError(ValueError):
    """A connection state whose header value would be longer than :data:`MAX_STATE_BYTES`."""


def encode_state(state: Mapping[str, Any]) -> str:
    """Encode a state object for the ``ce-connectionState`` header.

    Raises ``TypeError`` when a value cannot be represented in JSON.
    """
    return base64.b64encode(encode_json(state)).decode("ascii")


def decode_state(value: str | None) -> dict[str, Any]:
    """Decode a ``ce-connectionState`` header; a missing or empty header is the empty state.

    Raises :class:`InvalidStateError` when the value is not base64 of a UTF-8 JSON object.
    """
    if not value:
        return {}
    try:
        decoded = decode_json(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError, RecursionError) as exc:  # UnicodeDecodeError too
        raise InvalidStateError("connection state is not base64 of UTF-8 JSON") from exc
    if not isinstance(decoded, dict):
        raise InvalidStateError("connection state is not a JSON object")
    return decoded


def read_state_header(value: str | None) -> dict[str, Any]:
    """The state a request carried; an invalid header is logged and read as the empty state."""
    try:
        return decode_state(value)
    except InvalidStateError as exc:
        logger.warning("Ignoring the ce-connectionState header: %s.", exc)
        return {}


def changed_state_header(original: str | None, state: Mapping[str, Any]) -> str | None:
    """The ``ce-connectionState`` value for a reply, given the header the request carried.

    None when the handler left the state as it was (the service keeps it), else the whole new
    state, which is the empty object when the handler cleared it. Raises ``TypeError`` or
    ``ValueError`` when the new state cannot be encoded as JSON, and
    :class:`StateTooLargeError` when it is longer than :data:`MAX_STATE_BYTES`.
    """
    if not original:
        return _bounded(encode_state(state)) if state else None
    try:
        initial = decode_state(original)
    except InvalidStateError:
        initial = {}
    if state == initial:
        return None
    return _bounded(encode_state(state))


def _bounded(value: str) -> str:
    if len(value) > MAX_STATE_BYTES:
        raise StateTooLargeError(
            f"the connection state is {len(value)} bytes as a header, over the limit of "
            f"{MAX_STATE_BYTES}: keep less in event.state (an id to look the rest up by)"
        )
    return value
