"""The routes: the upstream event handler (OPTIONS and POST) and negotiate.

Thin adapters between Flask and :mod:`flask_webpubsub.protocol`; the whole upstream path reads
top to bottom in :func:`handle_event`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Blueprint, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.wrappers import Response as WerkzeugResponse
from werkzeug.wsgi import get_host

from . import protocol
from .config import origin_host
from .errors import (
    ConnectRejection,
    InvalidEventError,
    InvalidOriginError,
    PayloadTooLargeError,
    SignatureError,
    UnknownHubError,
)
from .events import ConnectEvent, UserEvent, WebPubSubEvent
from .extension import Hub, WebPubSubState
from .negotiate import NegotiateOptions, client_access, logged_in_user_id
from .signature import verify

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

_ORIGIN_SEPARATORS = re.compile(r"[,\s]+")
_GENERIC_ERROR = "Internal server error."


def create_blueprint(state: WebPubSubState) -> Blueprint:
    """The extension's routes for one app. The views close over that app's state, so a
    request needs no lookup of the current app."""
    blueprint = Blueprint("webpubsub", __name__)

    def event_handler(subpath: str | None = None) -> Response:
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        answer = answer_request(state, req)
        return _response(state, answer) if isinstance(answer, Answer) else answer

    # Flask must not answer OPTIONS itself: the abuse-protection check is ours to answer.
    event_handler.provide_automatic_options = False  # type: ignore[attr-defined]

    base = state.settings.event_handler_path.rstrip("/")
    # The service's URL template may end in a slash, or hold more path segments.
    for rule in dict.fromkeys((base or "/", base + "/", base + "/<path:subpath>")):
        blueprint.add_url_rule(rule, "event_handler", event_handler, methods=["OPTIONS", "POST"])
    if state.settings.negotiate_path is not None:
        blueprint.add_url_rule(
            state.settings.negotiate_path, "negotiate", lambda: negotiate(state), methods=["GET"]
        )
    return blueprint


def direct_dispatch(state: WebPubSubState, wsgi_app: WSGIApplication) -> WSGIApplication:
    """``wsgi_app`` with the event handler served in front of it (``WEBPUBSUB_DIRECT_DISPATCH``).

    POST and OPTIONS to the event handler path itself (sub-paths go through Flask's routing,
    which may hold the app's own routes) skip Flask's request handling: the request context,
    URL routing, before/after_request hooks, errorhandlers and request signals, which cost
    more than the rest of the event's handling. Handlers run in an app context, so
    ``current_app`` and ``g`` work; ``TRUSTED_HOSTS``, the trap and propagate settings and
    the app's response class are honoured; the reply is the same byte for byte.
    """
    app = state.app
    paths = {state.settings.event_handler_path, state.settings.event_handler_path + "/"}
    #: status -> "200 OK", as the response class writes it.
    status_lines: dict[int, str] = {}

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if not (method == "POST" or method == "OPTIONS") or environ.get("PATH_INFO") not in paths:
            return wsgi_app(environ, start_response)
        context = app.app_context()
        context.push()
        error: Exception | None = None
        try:
            req = app.request_class(environ)
            try:
                answer = _answer_directly(state, req)
            except Exception as exc:  # as Flask's wsgi_app handles an unhandled one
                error = exc
                propagate = app.config["PROPAGATE_EXCEPTIONS"]
                if propagate or (propagate is None and (app.testing or app.debug)):
                    raise
                app.logger.error(
                    "Exception on %s [%s]", environ.get("PATH_INFO"), method, exc_info=True
                )
                answer = InternalServerError(original_exception=exc).get_response(environ)
            finally:
                req.close()
            if not isinstance(answer, Answer):
                return answer(environ, start_response)
            if app.response_class is not Response:  # it may add headers: let it write them
                return _response(state, answer)(environ, start_response)
        finally:
            context.pop(error)
        # What a Response object would send, without building one (it costs a third of the
        # request). The tests compare both ways on the wire.
        reply = answer.reply
        headers = [("Content-Type", reply.content_type)] if reply.content_type else []
        if reply.status != 204:
            headers.append(("Content-Length", str(len(reply.body))))
        headers += answer.headers
        status = status_lines.get(reply.status)
        if status is None:
            status = status_lines[reply.status] = Response(status=reply.status).status
        start_response(status, headers)
        return [reply.body]

    return serve


def answer_request(state: WebPubSubState, req: Request) -> Answer | Response:
    """The abuse-protection check for OPTIONS, an event for POST."""
    if req.method == "OPTIONS":
        return abuse_protection(state, req)
    return handle_event(state, req)


def _answer_directly(state: WebPubSubState, req: Request) -> Answer | WerkzeugResponse:
    """The answer to an upstream request outside Flask's routing; HTTP errors become their
    responses, unless the app traps them."""
    app = state.app
    try:
        trusted_hosts = app.config["TRUSTED_HOSTS"]
        if trusted_hosts is not None:  # Flask checks them while routing, which this skips
            req.trusted_hosts = trusted_hosts
            req.host = get_host(req.environ, trusted_hosts)
        return answer_request(state, req)
    except HTTPException as exc:
        if app.trap_http_exception(exc):
            raise
        return exc.get_response(req.environ)


class Answer(NamedTuple):
    """A reply for the service and its extra headers, before it becomes a response."""

    reply: protocol.Reply
    headers: tuple[tuple[str, str], ...] = ()


def _answer(reply: protocol.Reply, state_value: str | None = None) -> Answer:
    return Answer(reply, () if state_value is None else (("ce-connectionState", state_value),))


def _response(state: WebPubSubState, answer: Answer) -> Response:
    reply = answer.reply
    response = state.response_class(
        reply.body, status=reply.status, content_type=reply.content_type
    )
    if reply.content_type is None:
        del response.headers["Content-Type"]
    response.headers.extend(answer.headers)
    return response


def abuse_protection(state: WebPubSubState, req: Request) -> Answer:
    """Answer the service's OPTIONS check (PROTOCOL.md section 1)."""
    settings = state.settings
    header = req.headers.get("WebHook-Request-Origin")
    origins = [o for o in _ORIGIN_SEPARATORS.split(header or "") if o]
    if not origins:
        raise InvalidOriginError("Missing WebHook-Request-Origin header.")
    if settings.allowed_origins == ("*",):
        return Answer(protocol.EMPTY_OK, (("WebHook-Allowed-Origin", "*"),))
    for origin in origins:
        if origin_host(origin) in settings.allowed_origins:
            return Answer(protocol.EMPTY_OK, (("WebHook-Allowed-Origin", origin),))
    raise InvalidOriginError(f"Origin {protocol.clip(origins[0])} is not allowed.")


def handle_event(state: WebPubSubState, req: Request) -> Answer | Response:
    """Verify, parse and dispatch one event, and reply as the service expects (a handler's
    ``abort(response)`` is the one answer that is a whole response already)."""
    settings = state.settings
    # Every request reads a dozen headers: straight from the environ, not through werkzeug's
    # case-folding EnvironHeaders, which costs a few microseconds per lookup.
    headers = protocol.WSGIHeaders(req.environ)
    connection_id = protocol.required_header(headers, "ce-connectionId")
    if settings.verify_signature and not verify(
        connection_id, headers.getlist("ce-signature"), settings.signature_keys
    ):
        logger.warning(
            "Rejected an event for connection %r: ce-signature matches no access key.",
            connection_id[:64],
        )
        raise SignatureError()
    attributes = protocol.read_attributes(headers, connection_id)
    hub = state.find_hub(attributes.hub)
    if hub is None:
        raise UnknownHubError(f"No handlers for hub {protocol.clip(attributes.hub)}.")

    body = read_body(req, settings.max_body_bytes)
    event = protocol.parse_event(headers, body, attributes)
    if event is None:
        logger.info("Ignored an event of unknown type %r.", headers.get("ce-type"))
        return _answer(protocol.EMPTY_OK)

    if isinstance(event, UserEvent):
        handler = hub.user_event_handler(event.event_name)
        return _blocking(state, event, handler, _user_event_reply)
    if isinstance(event, ConnectEvent):
        return _blocking(state, event, hub.connect_handler, _connect_reply)
    _notify(state, event, _notification_handler(hub, event.type))
    return _answer(protocol.EMPTY_OK)


def read_body(req: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (413 above it)."""
    environ = req.environ
    length = environ.get("CONTENT_LENGTH")
    if isinstance(length, int):  # PEP 3333 says a string; some servers (pyruvate) pass an int
        length = str(length)
    if length and length.isascii() and length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        # The common case, read straight from the server's stream: werkzeug's get_data wraps
        # it in several layers first, which costs as much as parsing the event.
        size = int(length)
        if size > limit:
            raise PayloadTooLargeError(f"The body is larger than {limit} bytes.")
        body: bytes = environ["wsgi.input"].read(size) if size else b""
        if len(body) != size:
            raise InvalidEventError("The body ended before its Content-Length.")
        return body
    # Chunked or without a length. One byte over the limit: werkzeug cuts a chunked body at
    # the limit without an error, so only reading past it tells a body that ends there from a
    # longer one.
    req.max_content_length = limit + 1
    too_large = PayloadTooLargeError(f"The body is larger than {limit} bytes.")
    try:
        data = req.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(data) > limit:
        raise too_large
    return data


def _notification_handler(hub: Hub, ce_type: str) -> Callable[..., Any] | None:
    if ce_type == protocol.CONNECTED:
        return hub.connected_handler
    if ce_type == protocol.DISCONNECTED:
        return hub.disconnected_handler
    if ce_type == protocol.GROUP_JOINED:
        return hub.group_joined_handler
    return hub.group_left_handler


def _user_event_reply(event: Any, result: Any) -> protocol.Reply:
    return protocol.encode_user_event_reply(result)


def _connect_reply(event: Any, result: Any) -> protocol.Reply:
    return protocol.encode_connect_reply(result, event.subprotocols)


def _rejection(
    event: WebPubSubEvent, status: int, reason: str, mqtt_code: int | None = None
) -> protocol.Reply:
    if isinstance(event, ConnectEvent):
        return protocol.encode_connect_rejection(status, reason, event.mqtt, mqtt_code)
    return protocol.Reply(status, protocol.TEXT_CONTENT_TYPE, reason.encode())


def _blocking(
    state: WebPubSubState,
    event: WebPubSubEvent,
    handler: Callable[..., Any] | None,
    encode: Callable[[Any, Any], protocol.Reply],
) -> Answer | Response:
    """Run a blocking handler and turn its result, or its ``abort()``, into the reply."""
    if handler is None:
        return _answer(protocol.NO_CONTENT)
    try:
        result = state.ensure_sync(handler)(event)
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
        state_value = protocol.reply_state(event)
    except (TypeError, ValueError) as exc:
        logger.error("The %s handler's result cannot be sent: %s.", event.event_name, exc)
        return _answer(_rejection(event, 500, _GENERIC_ERROR))
    return _answer(reply, state_value)


def _notify(
    state: WebPubSubState, event: WebPubSubEvent, handler: Callable[..., Any] | None
) -> None:
    """Run a notification handler; what it returns or raises never changes the reply."""
    if handler is None:
        return
    try:
        state.ensure_sync(handler)(event)
    except Exception:
        logger.exception(
            "The %s handler failed for connection %r.", event.event_name, event.connection_id
        )


def negotiate(state: WebPubSubState) -> Response:
    """``GET`` -> ``{"url", "baseUrl", "token"}`` for a client of the default hub, or of the hub
    named by ``?hub=`` when the app serves it."""
    requested = request.args.get("hub") or state.settings.hub
    hub = state.find_hub(requested)
    if hub is None:
        raise UnknownHubError(f"No hub named {protocol.clip(requested)}.")
    hook = hub.negotiate_handler or state.extension.negotiate_handler
    if hook is not None:
        options = NegotiateOptions.from_value(state.ensure_sync(hook)())
    else:
        options = NegotiateOptions(user_id=logged_in_user_id())
    access = client_access(state, requested, options)
    response = jsonify(access)
    response.headers["Cache-Control"] = "no-store"
    return response
