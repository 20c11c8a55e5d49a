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
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (from a client's input): keep it escaped
        encoded = json.dumps(state, separators=(",", ":"), allow_nan=False).encode()
    return base64.b64encode(encoded).decode("ascii")


def decode_state(value: str | None) -> dict[str, Any]:
    """Decode a ``ce-connectionState`` header; a missing or empty header is the empty state.

    Raises :class:`InvalidStateError` when the value is not base64 of a UTF-8 JSON object.
    """
    if not value:
        return {}
    try:
        decoded = json.loads(
            base64.b64decode(value.strip(), validate=True).decode(), parse_constant=_not_json
        )
    except (binascii.Error, ValueError, RecursionError) as exc:  # UnicodeDecodeError too
        raise InvalidStateError("connection state is not base64 of UTF-8 JSON") from exc
    if not isinstance(decoded, dict):
        raise InvalidStateError("connection state is not a JSON object")
    return decoded


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
