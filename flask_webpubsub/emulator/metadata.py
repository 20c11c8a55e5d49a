"""Message metadata (a preview feature of the service) as the emulator carries it:
``X-WebPubSub-Metadata-<key>`` headers on REST sends, ``x-webpubsub-metadata-<key>`` headers on
upstream requests and replies, and ``metadata`` on client messages.

The limits and the header form are the extension's (:mod:`flask_webpubsub.core.payload`, the
ones Microsoft's own emulator enforces). Metadata a client sends keeps its keys' case on its way
to other clients, so :func:`validate` checks the limits without lower-casing; over HTTP keys
travel lower-cased, and a key that comes twice keeps its last value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask_webpubsub.core.payload import (
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    METADATA_HEADER_PREFIX,
    METADATA_KEY,
    InvalidMetadataError,
    read_metadata,
)

__all__ = ["InvalidMetadataError", "from_headers", "to_headers", "validate"]


def validate(metadata: Mapping[str, str]) -> None:
    """Raise :class:`InvalidMetadataError` unless ``metadata`` is within the limits."""
    total = 0
    for key, value in metadata.items():
        shown = key[:40]
        if not METADATA_KEY.fullmatch(key):
            raise InvalidMetadataError(f"metadata key {shown!r} has characters a header name "
                                       "cannot have")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise InvalidMetadataError(f"metadata key {shown!r} is longer than "
                                       f"{MAX_METADATA_KEY_LENGTH} characters")
        if not value.isascii():
            raise InvalidMetadataError(f"the metadata value of {shown!r} is not ASCII")
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidMetadataError(f"the metadata value of {shown!r} is longer than "
                                       f"{MAX_METADATA_VALUE_LENGTH} characters")
        total += len(key) + len(value)
        if total > MAX_METADATA_LENGTH:
            raise InvalidMetadataError(f"the metadata is longer than {MAX_METADATA_LENGTH} "
                                       "characters in all")


def from_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The metadata in HTTP headers (:func:`~flask_webpubsub.core.payload.read_metadata`),
    validated (:class:`InvalidMetadataError`)."""
    metadata = read_metadata(headers)
    validate(metadata)
    return metadata


def to_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """The upstream request headers that carry ``metadata``."""
    return {METADATA_HEADER_PREFIX + key.lower(): value for key, value in metadata.items()}
