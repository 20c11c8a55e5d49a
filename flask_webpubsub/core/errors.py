"""What the protocol core raises. No web framework: each refusal carries the HTTP status the
service should get and a one-line reason, and the framework adapters turn it into a response.

Messages never contain secrets: no key, token or signature.
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """The configuration is missing a value or holds one it cannot use."""


class InvalidConnectionStringError(ConfigurationError):
    """A connection string could not be parsed. The message never contains the access key."""


class InvalidStateError(ValueError):
    """A ``ce-connectionState`` value is not base64 of a JSON object."""


class InvalidTokenError(ValueError):
    """A client or REST access token failed verification."""


class RequestRefused(ValueError):
    """An upstream request the protocol refuses: :attr:`status` and a one-line :attr:`reason`."""

    #: The HTTP status the refusal is answered with.
    status = 400
    #: One line that says what is wrong; never a secret.
    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(RequestRefused):
    """The request is not a well-formed Web PubSub CloudEvent (400)."""


class OriginRefused(RequestRefused):
    """The abuse-protection request came from an origin that is not allowed (400)."""


class BodyTooLarge(RequestRefused):
    """The body is larger than the configured limit (413)."""

    status = 413
