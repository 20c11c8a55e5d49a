"""The errors an app sees.

The HTTP errors subclass the matching werkzeug exception, so an app customises their responses
with ``errorhandler``; by default they render as one line of plain text, which is what the Web
PubSub service logs and what a person reading its live trace can act on::

    @app.errorhandler(SignatureError)
    def forged(error):
        audit_log.warning("forged Web PubSub event from %s", request.remote_addr)
        return error  # keep the service's reply as it is

The protocol core raises framework-free errors (:mod:`flask_webpubsub.core.errors`);
:func:`http_error` turns each into its HTTP error here.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    ServiceUnavailable,
    Unauthorized,
)

from .core.errors import (
    BodyTooLarge,
    ConfigurationError,
    InvalidConnectionStringError,
    MalformedEvent,
    OriginRefused,
    RequestRefused,
)
from .core.wire import TEXT_CONTENT_TYPE

__all__ = [
    "AuthenticationUnavailableError",
    "BearerTokenError",
    "ConfigurationError",
    "ConnectRejection",
    "InvalidConnectionStringError",
    "InvalidEventError",
    "InvalidOriginError",
    "PayloadTooLargeError",
    "ServiceAuthenticationError",
    "SignatureError",
    "UnknownHubError",
    "http_error",
]


class PlainTextHTTPException(HTTPException):
    """An HTTP error whose body is its description as one line of ``text/plain``."""

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return self.description or ""

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", TEXT_CONTENT_TYPE)]


class InvalidEventError(PlainTextHTTPException, BadRequest):
    """400: the upstream request is not a well-formed Web PubSub CloudEvent (a missing
    ``ce-*`` header, a malformed body). The description says what is wrong."""


class InvalidOriginError(PlainTextHTTPException, BadRequest):
    """400: the abuse-protection request (``OPTIONS``) came from an origin that
    ``WEBPUBSUB_ALLOWED_ORIGINS`` does not allow, or named none."""


class ServiceAuthenticationError(PlainTextHTTPException, Unauthorized):
    """401: the request does not prove that it comes from the service. No handler ran; the
    log says why, and the reply does not."""

    description = "Unauthorized."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or type(self).description)


class SignatureError(ServiceAuthenticationError):
    """401: the ``ce-signature`` header matches none of the access keys."""

    description = "Signature validation failed."


class BearerTokenError(ServiceAuthenticationError):
    """401: the service's Microsoft Entra ID bearer token is missing or not acceptable
    (``WEBPUBSUB_ENTRA_*``)."""

    description = "Bearer token validation failed."


class AuthenticationUnavailableError(PlainTextHTTPException, ServiceUnavailable):
    """503: the tenant's signing keys cannot be fetched, so no bearer token can be checked;
    the request is refused, never accepted unchecked."""

    description = "The service's identity cannot be checked right now."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or type(self).description)


class UnknownHubError(PlainTextHTTPException, NotFound):
    """404: the event is for a hub this app has no handlers for."""


class PayloadTooLargeError(PlainTextHTTPException, RequestEntityTooLarge):
    """413: the request body is larger than ``WEBPUBSUB_MAX_BODY_BYTES``."""


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


_HTTP_ERRORS: dict[type[RequestRefused], type[PlainTextHTTPException]] = {
    MalformedEvent: InvalidEventError,
    OriginRefused: InvalidOriginError,
    BodyTooLarge: PayloadTooLargeError,
}


def http_error(refused: RequestRefused) -> HTTPException:
    """The HTTP error for a refusal of the protocol core."""
    return _HTTP_ERRORS[type(refused)](refused.reason)
