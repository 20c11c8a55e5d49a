"""The ``ce-connectionState`` codec: padded standard base64 of compact UTF-8 JSON of an object."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidStateError

#: The header value that clears a connection's state.
EMPTY_STATE = "e30="


def encode_state(state: Mapping[str, Any]) -> str:
    """Encode a state object for the ``ce-connectionState`` header.

    Raises ``TypeError`` when a value cannot be represented in JSON.
    """
    text = json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return base64.b64encode(text.encode()).decode("ascii")


def decode_state(value: str | None) -> dict[str, Any]:
    """Decode a ``ce-connectionState`` header; a missing or empty header is the empty state.

    Raises :class:`InvalidStateError` when the value is not base64 of a UTF-8 JSON object.
    """
    if not value:
        return {}
    try:
        decoded = json.loads(base64.b64decode(value.strip(), validate=True).decode())
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise InvalidStateError("connection state is not base64 of UTF-8 JSON") from exc
    if not isinstance(decoded, dict):
        raise InvalidStateError("connection state is not a JSON object")
    return decoded
