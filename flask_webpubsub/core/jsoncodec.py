"""JSON as the service speaks it: compact UTF-8 out, strict standard JSON in.

The one JSON codec of the extension, the testing helpers and the emulator.
"""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads and json.dumps build a new decoder or encoder on every call that
# passes options.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def decode_json(text: str | bytes) -> Any:
    """Parse standard JSON (UTF-8 when given bytes); NaN and Infinity are refused.

    Raises ``ValueError`` (``UnicodeDecodeError`` and ``JSONDecodeError`` included) or
    ``RecursionError`` for input nested too deeply.
    """
    if isinstance(text, bytes):
        text = text.decode()
    return _STRICT.decode(text)


def encode_json(value: Any, *, escape_lone_surrogates: bool = True) -> bytes:
    """Compact UTF-8 JSON. Raises ``TypeError``/``ValueError`` for what JSON cannot hold, and
    ``UnicodeEncodeError`` for a lone surrogate unless ``escape_lone_surrogates``."""
    try:
        return _COMPACT.encode(value).encode()
    except UnicodeEncodeError:
        if not escape_lone_surrogates:
            raise
        # A lone surrogate, as a client's "\ud800" escape decodes to: keep it escaped.
        return _COMPACT_ASCII.encode(value).encode()
