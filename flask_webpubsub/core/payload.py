"""User event payloads, decoded and encoded by their media type (docs/protocol.md section 2).

``text/plain`` is text in its charset (UTF-8 by default), ``application/json`` a JSON value,
anything else bytes.
"""

from __future__ import annotations

import codecs
import functools
from typing import Any

from .errors import MalformedEvent
from .jsoncodec import decode_json, encode_json
from .wire import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    DataType,
    clip,
    parse_media_type,
)


def _charset(parameters: dict[str, str]) -> str:
    charset = parameters.get("charset") or "utf-8"
    try:
        name = codecs.lookup(charset).name
        "a".encode(name)  # fails for codecs that are not text encodings (base64, zlib, ...)
    except (LookupError, ValueError):
        raise MalformedEvent(f"Unsupported charset {clip(charset)}.") from None
    return name


def _decode_text(body: bytes, charset: str) -> str:
    """Decode text; raises ``UnicodeError`` for bytes, or a result, that are not valid text."""
    text = body.decode(charset)
    if charset != "utf-8":
        # Some codecs (utf-7, unicode_escape) decode to lone surrogates, which no reply could
        # carry: refuse them here rather than fail with a 500 when a handler echoes them.
        text.encode()
    return text


@functools.lru_cache(maxsize=256)
def _payload_format(content_type: str | None) -> tuple[str, DataType, str]:
    """``(media type, data type, charset)`` for a Content-Type; cached, since a service sends
    the same few. Raises :class:`MalformedEvent` for a charset that is not a text encoding."""
    media_type, parameters = parse_media_type(content_type)
    if media_type == "text/plain":
        return media_type, "text", _charset(parameters)
    if media_type == "application/json":
        return media_type, "json", _charset(parameters)
    return media_type, "binary", ""


def decode_payload(body: bytes, content_type: str | None) -> tuple[Any, DataType, str]:
    """Decode a user event payload by its Content-Type: ``(data, data_type, media_type)``.

    ``text/plain`` becomes ``str`` (charset parameter, UTF-8 by default), ``application/json``
    the decoded JSON value, anything else ``bytes`` untouched.
    """
    media_type, data_type, charset = _payload_format(content_type)
    if data_type == "text":
        try:
            return _decode_text(body, charset), "text", media_type
        except UnicodeError:
            raise MalformedEvent("The text payload does not match its charset.") from None
    if data_type == "json":
        try:
            text = _decode_text(body, charset)
        except UnicodeError:
            raise MalformedEvent("The JSON payload does not match its charset.") from None
        try:
            value = decode_json(text)
            if "\\ud" in text or "\\uD" in text:
                # Escaped surrogates must pair up: a lone one is no text a reply could carry.
                encode_json(value, escape_lone_surrogates=False)
        except UnicodeError:
            raise MalformedEvent("The JSON payload holds an unpaired surrogate.") from None
        except (ValueError, RecursionError):
            raise MalformedEvent("The JSON payload is not valid JSON.") from None
        return value, "json", media_type
    return body, "binary", media_type


def encode_payload(data: Any, data_type: DataType | None = None) -> tuple[bytes, str]:
    """A user event payload as the service forwards it: ``(body, content type)``.

    ``str`` is text, ``bytes`` binary, anything else JSON, unless ``data_type`` says otherwise.
    """
    if data_type is None:
        data_type = (
            "text"
            if isinstance(data, str)
            else "binary"
            if isinstance(data, (bytes, bytearray, memoryview))
            else "json"
        )
    if data_type == "text":
        return str(data).encode(), TEXT_CONTENT_TYPE
    if data_type == "binary":
        return bytes(data), BINARY_CONTENT_TYPE
    if data_type == "json":
        return encode_json(data), JSON_CONTENT_TYPE
    raise ValueError(f"unknown data_type {data_type!r}: use 'text', 'json' or 'binary'")
