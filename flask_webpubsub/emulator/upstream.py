"""Calls to the app's event handler, exactly as the service makes them (docs/protocol.md
sections 1-5).

One :class:`Upstream` per emulator holds the HTTP client and the hubs' event handler settings.
:meth:`Upstream.send` signs (or, with Entra ID, authorizes) and sends one CloudEvent and returns
the reply, or raises :class:`UpstreamError` (unreachable, timed out, rejected the
abuse-protection check, an invalid reply); every call is logged on one line, failures at warning
with what went wrong.

As the service does, a call that fails with 408, a 5xx or a network error is tried again after
1, 3 and 5 seconds (the same ``ce-id`` and body: handlers must tolerate duplicates); a timeout is
not retried. No message, log line or trace entry ever holds an upstream URL's query string
(``?code=...``). Each call, the abuse-protection check included, is one entry of the live trace
with its request and reply, masked (:meth:`.LiveTrace.add_call`). The HTTP client has no
connection limit: a call waits for its own upstream, never for a free slot behind other, slow
calls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from flask_webpubsub.core.errors import InvalidStateError
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.state import MAX_STATE_BYTES, decode_state
from flask_webpubsub.core.wire import (
    MAX_UPSTREAM_BODY_BYTES,
    SYSTEM_EVENT_TYPES,
    USER_PREFIX,
    origin_host,
    split_origins,
)

from . import metadata as message_metadata
from .event_handlers import ANY_HUB, EventHandler, redact_url
from .faults import NETWORK_ERROR, UpstreamFaults
from .redact import mask_url, summary
from .trace import LiveTrace

logger = logging.getLogger(__name__)

#: Seconds between the tries of a call that failed with 408, a 5xx or a network error.
RETRY_DELAYS = (1.0, 3.0, 5.0)
#: Gives the ``Authorization`` header value of an upstream call (Entra ID), or None.
Authorization = Callable[[], Awaitable[str]]


class UpstreamError(Exception):
    """The event could not be delivered; the message says why (no secrets)."""


class UpstreamValidationError(UpstreamError):
    """The upstream answered the abuse-protection check, and refused."""


class EventContext(Protocol):
    """What every event says about its connection."""

    @property
    def hub_name(self) -> str: ...

    @property
    def connection_id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def subprotocol(self) -> str | None: ...

    @property
    def connection_state(self) -> str | None: ...


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    content_type: str | None
    body: bytes = field(repr=False)
    #: The ``ce-connectionState`` header, when the reply set one.
    connection_state: str | None = field(default=None, repr=False)
    #: Its ``x-webpubsub-metadata-*`` headers, for the message the reply becomes.
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Its ``mqtt-*`` headers: the user properties of an MQTT client's reply message.
    mqtt_headers: tuple[tuple[str, str], ...] = ()
    #: Every header, for the live trace.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def next_connection_state(self, current: str | None) -> str | None:
        """The connection state after this reply to a blocking event: the header's value as it
        is (the service does not decode it), or none when it is the empty state."""
        if self.connection_state is None:
            return current
        try:
            if not decode_state(self.connection_state):
                return None
        except InvalidStateError:
            logger.warning(
                "The upstream set a ce-connectionState that is not base64 JSON; kept as is."
            )
        return self.connection_state


class Upstream:
    """The hubs' event handlers and the HTTP client that calls them."""

    def __init__(
        self,
        handlers: Mapping[str, Sequence[EventHandler]],
        keys: Sequence[str],
        origin: str,
        timeout: float,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        authorization: Authorization | None = None,
    ) -> None:
        """``keys`` sign ``ce-signature`` (none: no signature, as with local auth disabled);
        ``authorization`` gives each call's ``Authorization`` header (Entra ID)."""
        self.handlers = {hub.lower(): tuple(items) for hub, items in handlers.items()}
        self._keys = tuple(keys)
        self.origin = origin
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self.faults = UpstreamFaults()
        self._authorization = authorization
        self._http: aiohttp.ClientSession | None = None
        self._validated: set[str] = set()
        self._validating: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        #: Where each call is recorded, with its request and reply (the emulator's live trace).
        self.trace: LiveTrace | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            # No limit: a shared pool lets a few hanging calls hold up every other connection.
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def handler(self, hub: str, event_name: str, system: bool) -> EventHandler | None:
        """The event handler that takes this event of this hub, if any."""
        handlers = self.handlers.get(hub.lower())
        if handlers is None:
            handlers = self.handlers.get(ANY_HUB, ())
        for handler in handlers:
            if handler.takes(event_name, system):
                return handler
        return None

    # -- abuse protection ----------------------------------------------------------------------

    async def validate_all(self) -> None:
        """Run the abuse-protection check of every configured URL, as the portal does on save.

        Raises :class:`UpstreamValidationError` when an upstream refuses. An unreachable one is
        logged and checked again before its first event (the app may start after the emulator).
        """
        for hub, handlers in self.handlers.items():
            for handler in handlers:
                if hub == ANY_HUB and "{hub}" in handler.url_template:
                    continue  # checked per hub, before the first event
                try:
                    await self._validate(handler.url(hub, "validate"), hub)
                except UpstreamValidationError:
                    raise
                except UpstreamError as exc:
                    logger.warning(
                        "The upstream %s is not reachable yet (%s); it is checked again before "
                        "its first event.",
                        handler.redacted,
                        exc,
                    )

    async def _validate(self, url: str, hub: str) -> None:
        if url in self._validated:
            return
        pending = self._validating.get(url)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._validating[url] = future
        try:
            await self._options(url, hub)
            self._validated.add(url)
            future.set_result(None)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: only the waiters re-raise it
            raise
        finally:
            del self._validating[url]

    async def _options(self, url: str, hub: str) -> None:
        """The abuse-protection check (docs/protocol.md section 1), as the service makes it.

        The emulator announces its host, without a port, as the service does (its origin is
        ``<name>.webpubsub.azure.com``); an allowed origin matches when its host is that host,
        whatever port it names: ``@azure/web-pubsub-express`` answers ``127.0.0.1:8080`` for
        ``allowedEndpoints: ["http://127.0.0.1:8080"]``. Every ``WebHook-Allowed-Origin`` line
        counts (express sends one per allowed endpoint), each a list split on commas and spaces.
        """
        assert self._http is not None, "call start() first"
        shown = redact_url(url)
        headers = {"WebHook-Request-Origin": self.origin, "ce-awpsversion": "1.0"}
        started = time.perf_counter()
        what = "abuse-protection check"
        try:
            async with self._http.options(
                url,
                headers=headers,
                allow_redirects=False,
            ) as response:
                lines = response.headers.getall("WebHook-Allowed-Origin", [])
                status = response.status
                answer = await response.content.read(512)
                reason = answer.decode("utf-8", "replace").strip()
                self._record(hub, None, f"{what} -> {status}", "OPTIONS", url, headers, b"",
                             started, reply=(status, tuple(response.headers.items()), answer,
                                             response.headers.get("Content-Type")))
        except asyncio.TimeoutError:
            error = f"no answer within {self.timeout:g} s"
            self._record(hub, None, f"{what} failed: {error}", "OPTIONS", url, headers, b"",
                         started, error=error)
            raise UpstreamError(error) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = _describe(exc, url)
            self._record(hub, None, f"{what} failed: {error}", "OPTIONS", url, headers, b"",
                         started, error=error)
            raise UpstreamError(error) from None
        allowed = [origin for line in lines for origin in split_origins(line)]
        host = origin_host(self.origin)
        if 200 <= status < 300 and any(o == "*" or origin_host(o) == host for o in allowed):
            logger.info("The upstream %s passed the abuse-protection check.", shown)
            return
        reason = mask_url(reason[:200], url)
        if not 200 <= status < 300:
            detail = f"it answered {status}" + (f" ({reason})" if reason else "")
        elif not allowed:
            detail = "its answer has no WebHook-Allowed-Origin header"
        else:
            detail = f"it allows {', '.join(repr(o) for o in allowed[:5])}, not {host!r}"
        message = (
            f"the upstream {shown} refused the abuse-protection check (OPTIONS with "
            f"WebHook-Request-Origin: {self.origin}): {detail}. The emulator is {host} (a port "
            f"in an allowed origin is ignored): allow it in the app, e.g. an endpoint "
            f"http://{host}:<port> in its connection string or allowedEndpoints, or run the "
            "emulator with --host set to the host the app allows"
        )
        logger.error("%s.", message[0].upper() + message[1:])
        raise UpstreamValidationError(message)

    # -- events --------------------------------------------------------------------------------

    async def send(
        self,
        handler: EventHandler,
        context: EventContext,
        event_name: str,
        body: bytes,
        content_type: str,
        *,
        system: bool,
        metadata: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> UpstreamReply:
        """POST one event (a system event or a user event of that name); the reply, or
        :class:`UpstreamError` when there is none, or it is one the service refuses.

        ``metadata`` travels as ``x-webpubsub-metadata-*`` headers; the reply's come back in
        :attr:`UpstreamReply.metadata`. An MQTT client's context also has
        ``physical_connection_id`` and ``session_id``; ``extra_headers`` are its user
        properties (``mqtt-*``).
        """
        hub = context.hub_name
        url = handler.url(hub, event_name)
        shown = redact_url(url)
        connection_id = context.connection_id
        what = f"{event_name} event of connection {connection_id} in hub {hub}"
        started = time.perf_counter()
        try:
            await self._validate(handler.url(hub, "validate"), hub)
        except UpstreamValidationError as exc:
            raise UpstreamError(str(exc)) from None
        headers = build_event_headers(
            event_name,
            ce_type=SYSTEM_EVENT_TYPES[event_name] if system else USER_PREFIX + event_name,
            hub=hub,
            connection_id=connection_id,
            keys=self._keys,
            user_id=context.user_id,
            subprotocol=context.subprotocol,
            state=context.connection_state,
            origin=self.origin,
            event_id=str(next(self._ids)),
            content_type=content_type,
            physical_connection_id=getattr(context, "physical_connection_id", None),
            session_id=getattr(context, "session_id", None),
        )
        headers.update(message_metadata.to_headers(metadata or {}))
        if extra_headers:
            headers.update(extra_headers)
        if self._authorization is not None:
            headers["Authorization"] = await self._authorization()
        delays = (0.0, *self.retry_delays)
        sent = time.perf_counter()

        def record(text: str, reply: UpstreamReply | None = None, error: str | None = None,
                   attempts: int = 1) -> None:
            self._record(hub, connection_id, text, "POST", url, headers, body, sent,
                         content_type=content_type, error=error, attempts=attempts,
                         reply=None if reply is None else (
                             reply.status, reply.headers, reply.body, reply.content_type))

        for attempt, delay in enumerate(delays, 1):
            if delay:
                await asyncio.sleep(delay)
            last = attempt == len(delays)
            try:
                reply = await self._post(url, hub, event_name, headers, body)
            except asyncio.TimeoutError:
                logger.warning(
                    "The upstream %s did not answer the %s within %g s.", shown, what,
                    self.timeout,
                )
                error = f"no answer within {self.timeout:g} s"
                record(f"{event_name} failed: {error}", error=error, attempts=attempt)
                raise UpstreamError(
                    f"the upstream did not answer within {self.timeout:g} s"
                ) from None
            except _Failure as exc:
                if not last and exc.retryable:
                    logger.warning("The upstream %s failed for the %s: %s; trying again in %g s.",
                                   shown, what, exc, delays[attempt])
                    continue
                logger.warning("The upstream %s failed for the %s: %s.", shown, what, exc)
                record(f"{event_name} failed: {exc}", error=str(exc), attempts=attempt)
                raise UpstreamError(f"the upstream failed: {exc}") from None
            if not last and (reply.status == 408 or reply.status >= 500):
                logger.warning("%s -> %s: %d; trying again in %g s.", what, shown, reply.status,
                               delays[attempt])
                continue
            record(f"{event_name} -> {reply.status}", reply, attempts=attempt)
            break
        elapsed = (time.perf_counter() - started) * 1000
        log = logger.info if reply.ok else logger.warning
        log("%s -> %s: %d (%.0f ms)", what, shown, reply.status, elapsed)
        if reply.ok:
            self._check_reply(reply, shown, what)
        return reply

    async def _post(
        self, url: str, hub: str, event_name: str, headers: Mapping[str, str], body: bytes
    ) -> UpstreamReply:
        """One try: the reply, or :class:`_Failure` (``asyncio.TimeoutError`` on a timeout)."""
        assert self._http is not None, "call start() first"
        fault = self.faults.take(hub, event_name)
        if fault is not None:
            if fault.delay:
                if fault.delay >= self.timeout:
                    await asyncio.sleep(self.timeout)
                    raise asyncio.TimeoutError
                await asyncio.sleep(fault.delay)
            if fault.status == NETWORK_ERROR:
                raise _Failure("the server closed the connection without a reply (injected)",
                               retryable=True)
            if fault.status is not None:
                return UpstreamReply(fault.status, "text/plain", b"Injected fault.")
        try:
            async with self._http.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                reply_body = await _read_bounded(response)
                states = response.headers.getall("ce-connectionState", [])
                try:
                    metadata = message_metadata.from_headers(response.headers.items())
                except message_metadata.InvalidMetadataError as exc:
                    if 200 <= response.status < 300:
                        raise _Failure(f"the reply's metadata is invalid: {exc}") from None
                    metadata = {}
                if len(states) > 1:
                    logger.warning(
                        "The upstream %s replied to a %s event with %d ce-connectionState "
                        "headers; only one is allowed, so the connection state is unchanged.",
                        redact_url(url), event_name, len(states),
                    )
                return UpstreamReply(
                    response.status,
                    response.headers.get("Content-Type"),
                    reply_body,
                    states[0] if len(states) == 1 else None,
                    metadata,
                    tuple(
                        (name, value) for name, value in response.headers.items()
                        if name.lower().startswith("mqtt-")
                    ),
                    headers=tuple(response.headers.items()),
                )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, asyncio.TimeoutError):
                raise
            raise _Failure(_describe(exc, url), retryable=True) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise _Failure(_describe(exc, url)) from None

    def _record(
        self,
        hub: str,
        connection_id: str | None,
        text: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        started: float,
        *,
        content_type: str | None = None,
        reply: tuple[int, tuple[tuple[str, str], ...], bytes, str | None] | None = None,
        error: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Put one call, with its request and reply (or error), in the live trace."""
        if self.trace is None:
            return
        self.trace.add_call(
            hub, connection_id, text, method=method, url=url, headers=headers.items(),
            body=body, content_type=content_type, reply=reply, error=error,
            duration_ms=(time.perf_counter() - started) * 1000, attempts=attempts,
        )

    def _check_reply(self, reply: UpstreamReply, shown: str, what: str) -> None:
        """Refuse a successful reply the service could not keep: one whose connection state
        is longer than :data:`~flask_webpubsub.core.state.MAX_STATE_BYTES`. The service
        sends the state with every later event, as a header; the extension refuses to set a
        longer one, and so the emulator refuses the reply that does (the event fails)."""
        state = reply.connection_state
        if state is not None and len(state) > MAX_STATE_BYTES:
            reason = (
                f"its ce-connectionState is {len(state)} bytes, longer than the "
                f"{MAX_STATE_BYTES}-byte limit"
            )
            logger.warning("The upstream %s replied to the %s, but %s.", shown, what, reason)
            raise UpstreamError(f"the upstream's reply is refused: {reason}")


class _Failure(Exception):
    """One try failed without a reply to use; the message names no URL."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_UPSTREAM_BODY_BYTES:
            raise ValueError(f"the reply is larger than {MAX_UPSTREAM_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException, url: str) -> str:
    """What went wrong, in a few words, without the URL (whose query may hold a secret)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a reply"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its str() ends with the request URL; its message may quote the malformed reply.
        return f"the reply is not valid HTTP ({mask_url(summary(exc), url)})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the reply's body is incomplete or malformed"
    return mask_url(summary(exc), url)
