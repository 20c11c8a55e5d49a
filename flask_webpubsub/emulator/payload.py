"""Data with its type, whatever it came from (a REST body, a client's frame, an upstream reply)
and whoever receives it; the codecs write it in their client protocol."""

from __future__ import annotations

from dataclasses import dataclass

from flask_webpubsub.core.jsoncodec import decode_json
from flask_webpubsub.core.wire import (
    CONTENT_TYPES,
    MEDIA_DATA_TYPES,
    MessageDataType,
    parse_media_type,
)

#: The data types held as bytes; the others are text.
BINARY_DATA_TYPES = frozenset({"binary", "protobuf"})


@dataclass(frozen=True)
class Payload:
    """``text`` (str), ``json`` (the JSON text), ``binary`` or ``protobuf`` (bytes) data."""

    data_type: MessageDataType
    text: str = ""
    binary: bytes = b""

    @classmethod
    def from_http(cls, content_type: str | None, body: bytes, *, strict: bool = True) -> Payload:
        """A REST body or an upstream reply. Raises ``ValueError`` for an undecodable body, and
        with ``strict`` for a media type other than text, JSON and binary."""
        media_type, parameters = parse_media_type(content_type)
        data_type = MEDIA_DATA_TYPES.get(media_type)
        if data_type is None:
            if strict:
                raise ValueError(
                    f"unsupported Content-Type {media_type!r}: use application/json, text/plain "
                    "or application/octet-stream"
                )
            data_type = "binary"
        if data_type in BINARY_DATA_TYPES:
            return cls(data_type, binary=body)  # type: ignore[arg-type]
        try:
            text = body.decode(parameters.get("charset") or "utf-8")
        except (LookupError, UnicodeDecodeError):
            raise ValueError("the body does not match its charset") from None
        if data_type == "json":
            try:
                decode_json(text)
            except (ValueError, RecursionError):
                raise ValueError("the body is not valid JSON") from None
            text = text.strip()
        return cls(data_type, text=text)  # type: ignore[arg-type]

    @property
    def is_binary(self) -> bool:
        return self.data_type in BINARY_DATA_TYPES

    @property
    def content_type(self) -> str:
        """The Content-Type this payload is forwarded upstream with."""
        return CONTENT_TYPES[self.data_type]

    @property
    def body(self) -> bytes:
        """The bytes forwarded upstream."""
        return self.binary if self.is_binary else self.text.encode()

    def preview(self, limit: int = 120) -> str:
        """A short, printable description for the live trace."""
        if self.is_binary:
            return f"<{len(self.binary)} bytes>"
        return self.text if len(self.text) <= limit else self.text[:limit] + "…"
