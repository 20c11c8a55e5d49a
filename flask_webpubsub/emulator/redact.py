"""Keeping secrets out of what the emulator says: log lines, the live trace, error answers.

Two kinds of secret reach it in URLs: an upstream URL's query (``?code=...``, a function key)
and a client's token (``access_token=...``, ``awps_reconnection_token=...``, a JWT in
``Authorization``). :func:`mask_url` and :func:`redact_tokens` take them out of any text;
:class:`RedactingLogger` does it for the HTTP server's own log lines, which quote a malformed
request line as the client sent it.

The live trace shows each upstream call's headers and bodies: :func:`masked_url`,
:func:`mask_headers` and :func:`mask_body` mask every query value, the headers in
:data:`SECRET_HEADERS` and the JSON fields in :data:`SECRET_FIELDS` (an MQTT client's
``password`` among them), besides anything shaped like a token.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from flask_webpubsub.core.jsoncodec import decode_json, encode_json

#: What replaces a secret.
MASK = "***"
#: Headers whose values are secrets (lower case): ``Authorization`` keeps its scheme.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "ce-signature", "cookie", "set-cookie",
    "x-functions-key", "x-api-key",
})
#: JSON fields whose values are secrets, wherever they are in a body (compared in lower case,
#: without ``_`` and ``-``): an MQTT client's password, tokens, access keys and signatures.
SECRET_FIELDS = frozenset({
    "password", "accesstoken", "token", "awpsreconnectiontoken", "reconnectiontoken",
    "refreshtoken", "idtoken", "clientsecret", "secret", "accesskey", "signature",
    "authorization", "cookie",
})

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


def masked_url(url: str) -> str:
    """A URL to show: no user info, and every query value masked (the names stay, so that a
    ``?code=***`` shows that a function key is sent)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    query = "&".join(
        f"{quote(name, safe='')}={MASK}" for name, _ in parse_qsl(parts.query, True)
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def mask_headers(headers: Iterable[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """Headers to show: the values of :data:`SECRET_HEADERS` masked (``Bearer ***`` for a
    bearer token), the others redacted of tokens and cut to ``limit`` characters."""
    shown = []
    for name, value in headers:
        lower = name.lower()
        if lower in SECRET_HEADERS:
            scheme, _, credentials = value.partition(" ")
            value = f"{scheme} {MASK}" if lower.endswith("authorization") and credentials else MASK
        else:
            value = _cut(redact_tokens(value), limit)
        shown.append((name, value))
    return shown


def mask_body(body: bytes, content_type: str | None, limit: int) -> tuple[str, bool]:
    """A body to show, and whether it was cut: the values of :data:`SECRET_FIELDS` masked
    (in JSON, else in ``"field": "value"`` and ``field=value`` pairs), anything shaped like a
    token too, binary data as its size; at most ``limit`` characters (masked before it is cut,
    so that no part of a secret is left)."""
    if not body:
        return "", False
    media_type = (content_type or "").partition(";")[0].strip().lower()
    textual = media_type.startswith("text/") or media_type.endswith(("json", "+xml", "/xml")) \
        or media_type in ("", "application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8") if textual else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        return f"<{len(body)} bytes of {media_type or 'binary data'}>", False
    try:
        text = encode_json(_mask_fields(decode_json(text))).decode()
    except (ValueError, RecursionError):
        # Not JSON (or not all of it): mask "field": "value" and field=value pairs in the text.
        text = _QUOTED_FIELD.sub(_mask_match, _FORM_FIELD.sub(_mask_match, text))
    text = redact_tokens(text)
    return (text, False) if len(text) <= limit else (text[:limit], True)


_QUOTED_FIELD = re.compile(r'("([\w.-]{1,64})"\s*:\s*)"(?:[^"\\]|\\.)*"')
_FORM_FIELD = re.compile(r"(\b([\w.-]{1,64})=)[^&\s\"']+")


def mask_text(text: str) -> str:
    """A trace entry's text without secrets: JWTs, ``Bearer`` values and the values of
    :data:`SECRET_FIELDS` in ``"field": "value"`` and ``field=value`` pairs."""
    text = _QUOTED_FIELD.sub(_mask_match, _FORM_FIELD.sub(_mask_match, text))
    return _BEARER.sub(rf"\1{MASK}", _JWT.sub(MASK, text))


def _mask_match(match: re.Match[str]) -> str:
    if _field(match.group(2)) not in SECRET_FIELDS:
        return match.group(0)
    return match.group(1) + (f'"{MASK}"' if match.group(0).endswith('"') else MASK)


def _mask_fields(value: object) -> object:
    if isinstance(value, Mapping):
        return {
            key: MASK if _field(key) in SECRET_FIELDS and value[key] not in (None, "")
            else _mask_fields(value[key])
            for key in value
        }
    if isinstance(value, list):
        return [_mask_fields(item) for item in value]
    return value


def _field(name: object) -> str:
    return str(name).lower().replace("_", "").replace("-", "")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


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
