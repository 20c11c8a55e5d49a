"""User event payloads, decoded and encoded by their media type (docs/protocol.md section 2),
and the metadata that travels beside them as ``x-webpubsub-metadata-*`` headers.

``text/plain`` is text in its charset (UTF-8 by default), ``application/json`` a JSON value,
anything else bytes.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterable, Mapping
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


# -- message metadata (docs/protocol.md section 8) -----------------------------------------------

#: The header prefix that carries a message's metadata to the upstream and back in its reply.
METADATA_HEADER_PREFIX = "x-webpubsub-metadata-"
MAX_METADATA_KEY_LENGTH = 256
MAX_METADATA_VALUE_LENGTH = 1024
#: The longest all keys and values together may be.
MAX_METADATA_LENGTH = 8 * 1024

#: A metadata key: an HTTP header name's characters (RFC 9110 token).
METADATA_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+", re.IGNORECASE)


class InvalidMetadataError(ValueError):
    """Message metadata the service refuses; the message says which key and why."""


def validate_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` as it travels over HTTP: keys lower-cased, in their order.

    The service's limits (a preview feature it documents none for; these are the ones
    Microsoft's own emulator enforces): a key is an HTTP token (letters, digits and
    ``!#$%&'*+-.^_`|~``) of at most 256 characters, a value printable ASCII of at most 1024
    without white space around it (HTTP would drop it), keys and values together at most 8 KiB.
    Two keys that differ only in case would be one header. Raises ``TypeError`` for anything but
    a mapping of strings, :class:`InvalidMetadataError` for a rule broken.
    """
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of strings, not {type(metadata).__name__}")
    lowered: dict[str, str] = {}
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, not {type(key).__name__}")
        if not isinstance(value, str):
            raise TypeError(
                f"the metadata value of {clip(key)} must be a string, not {type(value).__name__}"
            )
        shown = clip(key)
        if not METADATA_KEY.fullmatch(key):
            raise InvalidMetadataError(
                f"the metadata key {shown} is empty or has characters a header name cannot have"
            )
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidMetadataError(
                f"the metadata key {shown} is longer than {MAX_METADATA_KEY_LENGTH} characters"
            )
        if not (value.isascii() and value.isprintable()):
            raise InvalidMetadataError(
                f"the metadata value of {shown} is not printable ASCII"
            )
        if value != value.strip():
            raise InvalidMetadataError(
                f"the metadata value of {shown} starts or ends with white space, which HTTP "
                "does not keep"
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidMetadataError(
                f"the metadata value of {shown} is longer than {MAX_METADATA_VALUE_LENGTH} "
                "characters"
            )
        total += len(key) + len(value)
        if total > MAX_METADATA_LENGTH:
            raise InvalidMetadataError(
                f"the metadata is longer than {MAX_METADATA_LENGTH} characters in all"
            )
        name = key.lower()
        if name in lowered:
            raise InvalidMetadataError(
                f"the metadata key {shown} differs from another only in case: over HTTP both "
                "are one header"
            )
        lowered[name] = value
    return lowered


def metadata_headers(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers that carry metadata that :func:`validate_metadata` returned."""
    return [(METADATA_HEADER_PREFIX + key, value) for key, value in metadata.items()]


def read_metadata(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The metadata in HTTP headers, as the service sent it: keys lower-cased (header names
    have no case), values without surrounding white space, the last value of a repeated key.
    A bare prefix with no key is not metadata."""
    metadata: dict[str, str] = {}
    start = len(METADATA_HEADER_PREFIX)
    for name, value in headers:
        if len(name) > start and name[:start].lower() == METADATA_HEADER_PREFIX:
            metadata[name[start:].lower()] = value.strip()
    return metadata
