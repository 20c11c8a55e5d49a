"""Message metadata (a preview feature of the service): ``X-WebPubSub-Metadata-<key>`` headers on
REST sends, ``x-webpubsub-metadata-<key>`` headers on upstream requests and replies.

The service documents no limits yet; these are the ones Microsoft's own emulator enforces
(Azure/azure-webpubsub ``tools/emulator``, ``WebPubSubMetadataValidator.cs``): a key is an HTTP
token (``!#$%&'*+-.^_`|~``, digits, letters) of at most 256 characters, a value is ASCII of at
most 1024, keys and values together at most 8 KiB. Keys travel lower-cased over HTTP; a key
that comes twice keeps its last value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

HEADER_PREFIX = "x-webpubsub-metadata-"
MAX_KEY_LENGTH = 256
MAX_VALUE_LENGTH = 1024
MAX_TOTAL_LENGTH = 8 * 1024

_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+", re.IGNORECASE)


class InvalidMetadataError(ValueError):
    """Metadata the service refuses; the message says which key and why."""


def validate(metadata: Mapping[str, str]) -> None:
    """Raise :class:`InvalidMetadataError` unless ``metadata`` is within the limits."""
    total = 0
    for key, value in metadata.items():
        shown = key[:40]
        if not _KEY.fullmatch(key):
            raise InvalidMetadataError(f"metadata key {shown!r} has characters a header name "
                                       "cannot have")
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidMetadataError(f"metadata key {shown!r} is longer than "
                                       f"{MAX_KEY_LENGTH} characters")
        if not value.isascii():
            raise InvalidMetadataError(f"the metadata value of {shown!r} is not ASCII")
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidMetadataError(f"the metadata value of {shown!r} is longer than "
                                       f"{MAX_VALUE_LENGTH} characters")
        total += len(key) + len(value)
        if total > MAX_TOTAL_LENGTH:
            raise InvalidMetadataError(f"the metadata is longer than {MAX_TOTAL_LENGTH} "
                                       "characters in all")


def from_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The metadata in HTTP headers, keys lower-cased, the last value of a repeated key;
    validated (:class:`InvalidMetadataError`). A bare prefix with no key is ignored."""
    metadata: dict[str, str] = {}
    for name, value in headers:
        if name.lower().startswith(HEADER_PREFIX):
            key = name[len(HEADER_PREFIX):].lower()
            if key:
                metadata[key] = value.strip()
    validate(metadata)
    return metadata


def to_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """The upstream request headers that carry ``metadata``."""
    return {HEADER_PREFIX + key.lower(): value for key, value in metadata.items()}
