"""Exceptions raised by flask_webpubsub.

HTTP errors subclass the matching werkzeug exception, so applications can customise them with
``app.errorhandler``; they render as one line of plain text, which is what the Web PubSub service
logs and what a person reading its live trace can act on.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    Unauthorized,
)


class ConfigurationError(ValueError):
    """The extension's configuration is missing a value or holds one it cannot use."""


class InvalidConnectionStringError(ConfigurationError):
    """A connection string could not be parsed. The message never contains the access key."""


class InvalidStateError(ValueError):
    """A ``ce-connectionState`` value is not base64 of a JSON object."""


class InvalidTokenError(ValueError):
    """A client or REST access token failed verification."""


class PlainTextHTTPException(HTTPException):
    """An HTTP error whose body is its description as one line of ``text/plain``."""

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return self.description or ""

    def get_headers(
        self, environ: Any = None, scope: Any = None
    ) -> list[tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8")]


class InvalidEventError(PlainTextHTTPException, BadRequest):
    """The upstream request is not a well-formed Web PubSub CloudEvent (400)."""


class InvalidOriginError(PlainTextHTTPException, BadRequest):
    """The abuse-protection request came from an origin that is not allowed (400)."""


class SignatureError(PlainTextHTTPException, Unauthorized):
    """The ``ce-signature`` header matches none of the configured access keys (401)."""

    description = "Signature validation failed."

    def __init__(self) -> None:
        super().__init__(self.description)


class UnknownHubError(PlainTextHTTPException, NotFound):
    """The event is for a hub this application has no handlers for (404)."""


class PayloadTooLargeError(PlainTextHTTPException, RequestEntityTooLarge):
    """The request body is larger than ``WEBPUBSUB_MAX_BODY_BYTES`` (413)."""


class ConnectRejection(PlainTextHTTPException):
    """Reject a connect event with a status, a reason and, for MQTT clients, an explicit code.

    ``abort(403, "banned")`` is enough in most handlers; raise this to give MQTT clients a
    specific MQTT return or reason code instead of the one derived from the status.
    """

    def __init__(self, status: int, reason: str = "", *, mqtt_code: int | None = None) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a rejection needs a 4xx or 5xx status, not {status}")
        self.code = status
        self.mqtt_code = mqtt_code
        super().__init__(reason)
