"""Keeping secrets out of what the emulator says: log lines, the live trace, error answers.

Two kinds of secret reach it in URLs: an upstream URL's query (``?code=...``, a function key)
and a client's token (``access_token=...``, ``awps_reconnection_token=...``, a JWT in
``Authorization``). :func:`mask_url` and :func:`redact_tokens` take them out of any text;
:class:`RedactingLogger` does it for the HTTP server's own log lines, which quote a malformed
request line as the client sent it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

#: What replaces a secret.
MASK = "***"

# A JWT (three base64url parts, the first a JSON header: "eyJ"), and the query parameters and
# header that carry tokens, up to the next delimiter.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_TOKEN_PARAMETER = re.compile(
    r"((?:access_token|awps_reconnection_token|code|sig|signature|key)=)[^&\s'\"]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    """``text`` without anything shaped like a token: JWTs, ``access_token=`` and the like,
    ``Bearer`` values."""
    text = _JWT.sub(MASK, text)
    text = _TOKEN_PARAMETER.sub(rf"\1{MASK}", text)
    return _BEARER.sub(rf"\1{MASK}", text)


def mask_url(text: str, url: str) -> str:
    """``text`` with ``url``'s query string, user info and each query value masked, wherever
    they appear (whole, or percent-encoded as a client library may quote them)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_tokens(text)
    secrets = [parts.query, parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""]
    secrets += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return redact_tokens(text)


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger for aiohttp's server whose lines never carry a token: the message, its
    arguments and an exception's text are redacted, and an exception is reduced to one line
    (its traceback would quote the request line again)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        exc_info = kwargs.pop("exc_info", None)
        text = str(msg) % args if args else str(msg)
        error = _exception(exc_info)
        if error is not None:
            text += f": {type(error).__name__}: {summary(error)}"
        kwargs.pop("stack_info", None)
        self.logger.log(level, "%s", redact_tokens(text), **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs


def _exception(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        error = exc_info[1]
        return error if isinstance(error, BaseException) else None
    if exc_info:
        return sys.exc_info()[1]
    return None


def summary(error: BaseException) -> str:
    """An exception's explanation without the data it quotes: aiohttp's parser errors end
    with the offending line (``b'GET /...?access_token=...'``), which is left out."""
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) else str(error)
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("b'", 'b"', "^")):
            break
        if line:
            lines.append(line)
    return redact_tokens(" ".join(lines).rstrip(":"))[:200] or type(error).__name__
