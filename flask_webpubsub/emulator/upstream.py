"""Calls to the app's event handler, exactly as the service makes them (docs/protocol.md
sections 1-5).

One :class:`Upstream` per emulator holds the HTTP client and the hubs' event handler settings.
:meth:`Upstream.send` signs and sends one CloudEvent and returns the reply, or raises
:class:`UpstreamError` (unreachable, timed out, rejected the abuse-protection check); every
call is logged on one line, failures at warning with what went wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from flask_webpubsub.core.errors import InvalidStateError
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.state import decode_state
from flask_webpubsub.core.wire import (
    MAX_UPSTREAM_BODY_BYTES,
    SYSTEM_EVENT_TYPES,
    USER_PREFIX,
    split_origins,
)

from .event_handlers import ANY_HUB, EventHandler, redact_url

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.handlers = {hub.lower(): tuple(items) for hub, items in handlers.items()}
        self._keys = tuple(keys)
        self.origin = origin
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self._validated: set[str] = set()
        self._validating: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=200),
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
                    await self._validate(handler.url(hub, "validate"))
                except UpstreamValidationError:
                    raise
                except UpstreamError as exc:
                    logger.warning(
                        "The upstream %s is not reachable yet (%s); it is checked again before "
                        "its first event.",
                        handler.redacted,
                        exc,
                    )

    async def _validate(self, url: str) -> None:
        if url in self._validated:
            return
        pending = self._validating.get(url)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._validating[url] = future
        try:
            await self._options(url)
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

    async def _options(self, url: str) -> None:
        assert self._http is not None, "call start() first"
        shown = redact_url(url)
        try:
            async with self._http.options(
                url,
                headers={"WebHook-Request-Origin": self.origin, "ce-awpsversion": "1.0"},
                allow_redirects=False,
            ) as response:
                allowed = response.headers.get("WebHook-Allowed-Origin", "")
                status = response.status
                reason = (await response.content.read(512)).decode("utf-8", "replace").strip()
        except asyncio.TimeoutError:
            raise UpstreamError(f"no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(_describe(exc)) from None
        origins = {o.lower() for o in split_origins(allowed)}
        if 200 <= status < 300 and ("*" in origins or self.origin.lower() in origins):
            logger.info("The upstream %s passed the abuse-protection check.", shown)
            return
        detail = f"status {status}" + (f" ({reason[:200]})" if reason else "")
        if 200 <= status < 300:
            detail += f", WebHook-Allowed-Origin {allowed!r} does not allow {self.origin!r}"
        message = (
            f"the upstream {shown} refused the abuse-protection check (OPTIONS with "
            f"WebHook-Request-Origin: {self.origin}): {detail}. Allow this origin in the app, "
            "for example with a connection string whose Endpoint is this emulator"
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
    ) -> UpstreamReply:
        """POST one event (a system event or a user event of that name); the reply, or
        :class:`UpstreamError` when there is none."""
        assert self._http is not None, "call start() first"
        hub = context.hub_name
        url = handler.url(hub, event_name)
        shown = redact_url(url)
        connection_id = context.connection_id
        what = f"{event_name} event of connection {connection_id} in hub {hub}"
        started = time.perf_counter()
        try:
            await self._validate(handler.url(hub, "validate"))
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
            )
            async with self._http.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                reply_body = await _read_bounded(response)
                states = response.headers.getall("ce-connectionState", [])
                reply = UpstreamReply(
                    response.status,
                    response.headers.get("Content-Type"),
                    reply_body,
                    states[0] if len(states) == 1 else None,
                )
        except UpstreamValidationError as exc:
            raise UpstreamError(str(exc)) from None
        except asyncio.TimeoutError:
            logger.warning(
                "The upstream %s did not answer the %s within %g s.", shown, what, self.timeout
            )
            raise UpstreamError(f"the upstream did not answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason = _describe(exc)
            logger.warning("The upstream %s failed for the %s: %s.", shown, what, reason)
            raise UpstreamError(f"the upstream failed: {reason}") from None
        if len(states) > 1:
            logger.warning(
                "The upstream %s replied to the %s with %d ce-connectionState headers; only one "
                "is allowed, so the connection state is unchanged.",
                shown,
                what,
                len(states),
            )
        elapsed = (time.perf_counter() - started) * 1000
        log = logger.info if reply.ok else logger.warning
        log("%s -> %s: %d (%.0f ms)", what, shown, reply.status, elapsed)
        return reply


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_UPSTREAM_BODY_BYTES:
            raise ValueError(f"the reply is larger than {MAX_UPSTREAM_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a reply"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
