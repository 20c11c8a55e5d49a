"""One upstream request, answered: the abuse-protection check for ``OPTIONS``, an event for
``POST``. The whole upstream path reads top to bottom in :func:`handle_event`.

This is the adapter between werkzeug's request and the protocol core (:mod:`.core`); the
routed view (:mod:`.views`) and direct dispatch (:mod:`.direct_dispatch`) both answer through
:func:`answer_request`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from flask import Response, current_app, has_request_context
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request

from .binding import AppBinding
from .core import reply as replies
from .core.entra import EntraTokenError, EntraTokenValidator, SigningKeysUnavailableError
from .core.errors import BodyTooLarge, MalformedEvent, OriginRefused, RequestRefused
from .core.events import ConnectEvent, UserEvent, WebPubSubEvent
from .core.request import parse_event, read_attributes, required_header
from .core.signature import verify
from .core.wire import TEXT_CONTENT_TYPE, clip, origin_host, split_origins
from .errors import (
    AuthenticationUnavailableError,
    BearerTokenError,
    ConnectRejection,
    SignatureError,
    UnknownHubError,
    http_error,
)

logger = logging.getLogger(__name__)

_GENERIC_ERROR = "Internal server error."

_ENVIRON_KEYS: dict[str, str] = {}


def _environ_key(name: str) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        _ENVIRON_KEYS[name] = key
    return key


class WSGIHeaders:
    """Request headers read straight from a WSGI environ: one dict lookup per header, where
    werkzeug's case-folding ``EnvironHeaders`` costs a few microseconds per lookup.

    The server has already folded repeated header lines into one comma-separated value
    (PEP 3333), which is how ``ce-signature`` lists are read anyway.
    """

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    def get(self, key: str) -> str | None:
        return self.environ.get(_ENVIRON_KEYS.get(key) or _environ_key(key))

    def getlist(self, key: str) -> list[str]:
        value = self.get(key)
        return [] if value is None else [value]

    def items(self) -> list[tuple[str, str]]:
        """Every header as ``(lower-case-name, value)``."""
        found = []
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                found.append((key[5:].replace("_", "-").lower(), value))
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                found.append((key.replace("_", "-").lower(), value))
        return found


class Answer(NamedTuple):
    """A reply for the service and its extra headers, before it becomes a response."""

    reply: replies.Reply
    headers: tuple[tuple[str, str], ...] = ()


def _answer(reply: replies.Reply, state_value: str | None = None) -> Answer:
    if state_value is None:
        return Answer(reply, reply.headers)
    return Answer(reply, (*reply.headers, ("ce-connectionState", state_value)))


def to_response(binding: AppBinding, answer: Answer) -> Response:
    """The app's response object for an answer."""
    reply = answer.reply
    response = binding.app.response_class(
        reply.body, status=reply.status, content_type=reply.content_type
    )
    if reply.content_type is None:
        del response.headers["Content-Type"]
    response.headers.extend(answer.headers)
    return response


def answer_request(binding: AppBinding, req: Request) -> Answer | Response:
    """The abuse-protection check for OPTIONS, an event for POST. Refusals are raised as the
    HTTP errors of :mod:`.errors`; a handler's ``abort(response)`` is the one answer that is a
    whole response already."""
    try:
        if req.method == "OPTIONS":
            return abuse_protection(binding, req)
        return handle_event(binding, req)
    except RequestRefused as refused:
        raise http_error(refused) from None


def abuse_protection(binding: AppBinding, req: Request) -> Answer:
    """Answer the service's OPTIONS check (docs/protocol.md section 1)."""
    allowed = binding.settings.allowed_origins
    origins = split_origins(req.environ.get("HTTP_WEBHOOK_REQUEST_ORIGIN"))
    if not origins:
        raise OriginRefused("Missing WebHook-Request-Origin header.")
    if allowed == ("*",):
        return Answer(replies.EMPTY_OK, (("WebHook-Allowed-Origin", "*"),))
    for origin in origins:
        if origin_host(origin) in allowed:
            return Answer(replies.EMPTY_OK, (("WebHook-Allowed-Origin", origin),))
    raise OriginRefused(f"Origin {clip(origins[0])} is not allowed.")


def handle_event(binding: AppBinding, req: Request) -> Answer | Response:
    """Verify, parse and dispatch one event, and reply as the service expects."""
    settings = binding.settings
    headers = WSGIHeaders(req.environ)
    connection_id = required_header(headers, "ce-connectionId")
    if settings.verify_signature and not verify(
        connection_id, headers.getlist("ce-signature"), settings.signature_keys
    ):
        logger.warning(
            "Rejected an event for connection %r: ce-signature matches no access key.",
            connection_id[:64],
        )
        raise SignatureError()
    if settings.entra is not None:
        _check_bearer_token(settings.entra, req.environ.get("HTTP_AUTHORIZATION"), connection_id)
    attributes = read_attributes(headers, connection_id)
    hub = binding.find_hub(attributes.hub)
    if hub is None:
        raise UnknownHubError(f"No handlers for hub {clip(attributes.hub)}.")

    body = read_body(req, settings.max_body_bytes)
    event = parse_event(headers, body, attributes)
    if event is None:
        logger.info("Ignored an event of unknown type %r.", attributes.type)
        return _answer(replies.EMPTY_OK)

    handler = hub.handler(event.type)
    if isinstance(event, UserEvent):
        return _blocking(binding, event, handler, _user_event_reply)
    if isinstance(event, ConnectEvent):
        return _blocking(binding, event, handler, _connect_reply)
    _notify(binding, event, handler)
    return _answer(replies.EMPTY_OK)


def _check_bearer_token(
    validator: EntraTokenValidator, authorization: str | None, connection_id: str
) -> None:
    """The service's Entra ID token, checked before anything else of the request is read."""
    try:
        validator.validate(authorization)
    except EntraTokenError as exc:
        logger.warning(
            "Rejected an event for connection %r: the bearer token is not the service's: %s.",
            connection_id[:64],
            exc.reason,
        )
        raise BearerTokenError() from None
    except SigningKeysUnavailableError as exc:
        logger.error("Refused an event: the service's bearer token cannot be checked: %s.", exc)
        raise AuthenticationUnavailableError() from None


def read_body(req: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (413 above it).

    Read once, and left where Flask finds it: ``request.data``, ``get_data()``, ``get_json()``
    and ``request.stream`` give the same bytes afterwards, to handlers, hooks and middleware.
    """
    cached = req.__dict__.get("_cached_data")  # where werkzeug keeps what get_data() read
    if cached is None and "stream" not in req.__dict__:
        environ = req.environ
        length = environ.get("CONTENT_LENGTH")
        if isinstance(length, int):  # PEP 3333 says a string; some servers (pyruvate) pass an int
            length = str(length)
        if (
            length
            and length.isascii()
            and length.isdigit()
            and "HTTP_TRANSFER_ENCODING" not in environ
        ):
            # The common case, read straight from the server's stream: werkzeug's get_data
            # wraps it in several layers first, which costs as much as parsing the event.
            size = int(length)
            if size > limit:
                raise _too_large(limit)
            try:
                body: bytes = environ["wsgi.input"].read(size) if size else b""
            except Exception:  # the server's own error for a body cut short (gunicorn's)
                body = b""
            if len(body) != size:
                raise MalformedEvent("The body ended before its Content-Length.")
            _leave_for_flask(req, body)
            return body
    if cached is None:
        # Chunked, without a length, or already opened by someone else. One byte over the
        # limit: werkzeug cuts a chunked body at the limit without an error, so only reading
        # past it tells a body that ends there from a longer one.
        req.max_content_length = limit + 1
        try:
            cached = req.get_data(cache=True)
        except RequestEntityTooLarge:
            raise _too_large(limit) from None
        except ClientDisconnected:
            raise MalformedEvent("The chunked body is malformed or cut short.") from None
        except HTTPException:
            raise
        except Exception:  # the server's own error for a malformed chunk (gunicorn's)
            raise MalformedEvent("The chunked body is malformed or cut short.") from None
        if not cached and "chunked" in req.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # The service sends every body with a Content-Length. Some servers (granian) read a
            # malformed chunked body as an empty one, so an empty chunked body is refused too.
            raise MalformedEvent("The chunked body is empty or malformed.")
        _leave_for_flask(req, cached)
    if len(cached) > limit:
        raise _too_large(limit)
    return bytes(cached)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The body is larger than {limit} bytes.")


def _leave_for_flask(req: Request, body: bytes) -> None:
    """Where ``get_data()`` (and so ``data``, ``get_json()``), ``stream`` and a WSGI middleware
    around the app look for the body: they find it there, not an exhausted socket. (Direct
    dispatch has no request context: only a middleware can look.)"""
    req.environ["wsgi.input"] = io.BytesIO(body)
    if has_request_context():
        req._cached_data = body
        req.__dict__["stream"] = io.BytesIO(body)  # Request.stream is a cached property


def _user_event_reply(event: Any, result: Any) -> replies.Reply:
    return replies.encode_user_event_reply(result)


def _connect_reply(event: Any, result: Any) -> replies.Reply:
    return replies.encode_connect_reply(result, event.subprotocols)


def _rejection(
    event: WebPubSubEvent, status: int, reason: str, mqtt_code: int | None = None
) -> replies.Reply:
    if isinstance(event, ConnectEvent):
        return replies.encode_connect_rejection(status, reason, event.mqtt, mqtt_code)
    return replies.Reply(status, TEXT_CONTENT_TYPE, reason.encode())


def _blocking(
    binding: AppBinding,
    event: WebPubSubEvent,
    handler: Callable[..., Any] | None,
    encode: Callable[[Any, Any], replies.Reply],
) -> Answer | Response:
    """Run a blocking handler and turn its result, or its ``abort()``, into the reply."""
    if handler is None:
        return _answer(replies.NO_CONTENT)
    try:
        result = binding.ensure_sync(handler)(event)
    except HTTPException as exc:
        if exc.response is not None:
            return current_app.make_response(exc.response)
        if exc.code is None or exc.code < 400:
            logger.error(
                "The %s handler raised %s, which is not an error status; answering 500.",
                event.event_name,
                type(exc).__name__,
            )
            return _answer(_rejection(event, 500, _GENERIC_ERROR))
        mqtt_code = exc.mqtt_code if isinstance(exc, ConnectRejection) else None
        return _answer(_rejection(event, exc.code, exc.description or "", mqtt_code))
    except Exception:
        logger.exception(
            "The %s handler failed for connection %r.", event.event_name, event.connection_id
        )
        return _answer(_rejection(event, 500, _GENERIC_ERROR))
    try:
        reply = encode(event, result)
        state_value = replies.reply_state(event)
    except (TypeError, ValueError) as exc:
        logger.error("The %s handler's result cannot be sent: %s.", event.event_name, exc)
        return _answer(_rejection(event, 500, _GENERIC_ERROR))
    return _answer(reply, state_value)


def _notify(
    binding: AppBinding, event: WebPubSubEvent, handler: Callable[..., Any] | None
) -> None:
    """Run a notification handler; what it returns or raises never changes the reply."""
    if handler is None:
        return
    try:
        binding.ensure_sync(handler)(event)
    except Exception:
        logger.exception(
            "The %s handler failed for connection %r.", event.event_name, event.connection_id
        )
