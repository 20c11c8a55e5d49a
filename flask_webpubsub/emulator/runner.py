"""Running an :class:`~.server.Emulator` for code that has no event loop of its own: in a
background thread (:class:`EmulatorThread`, for tests and CLIs), or until Ctrl+C or SIGTERM
(:func:`run`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from flask_webpubsub.core.endpoint import ServiceEndpoint

from .faults import UpstreamFault
from .server import Emulator

T = TypeVar("T")


class EmulatorThread:
    """An :class:`Emulator` in a background thread with its own event loop.

    ``EmulatorThread(upstream="http://127.0.0.1:5000/eventhandler").start()`` returns once it
    listens (port 0, the default, picks a free port); ``stop()`` closes everything. Also a
    context manager.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream: str | None = None,
        hubs: Iterable[str] = (),
        access_key: str | None = None,
        **options: Any,
    ) -> None:
        self._options = dict(
            host=host, port=port, upstream=upstream, hubs=list(hubs), access_key=access_key,
            **options,
        )
        self._emulator: Emulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not started: call start() first")
        return self._emulator

    @property
    def connection_string(self) -> str:
        return self.emulator.connection_string

    @property
    def endpoint(self) -> ServiceEndpoint:
        return self.emulator.endpoint

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def app_settings(self) -> dict[str, Any]:
        """:attr:`Emulator.app_settings`."""
        return self.emulator.app_settings

    def credential(self) -> Any:
        """:meth:`Emulator.credential` (with Entra ID)."""
        return self.emulator.credential()

    def start(self, timeout: float = 30.0) -> EmulatorThread:
        """Start serving; raises what :meth:`Emulator.start` raises."""
        if self._thread is not None:
            raise RuntimeError("this EmulatorThread is started already")
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="webpubsub-emulator", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = None
            raise
        return self

    def _main(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, ready: Future[None]) -> None:
        self._stopped = asyncio.Event()
        try:
            emulator = Emulator(**self._options)
            await emulator.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._emulator = emulator
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await emulator.stop()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine in the emulator's loop and return its result."""
        if self._loop is None or self._thread is None:
            coroutine.close()
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def drop(self, connection_id: str, hub: str | None = None) -> bool:
        """:meth:`Emulator.drop` from this thread."""
        return self.call(self.emulator.drop(connection_id, hub))

    def drop_half_open(self, connection_id: str, hub: str | None = None) -> bool:
        """:meth:`Emulator.drop_half_open` from this thread."""
        return self.call(self.emulator.drop_half_open(connection_id, hub))

    def close_connection(
        self, connection_id: str, *, code: int = 1000, reason: str | None = None,
        hub: str | None = None,
    ) -> bool:
        """:meth:`Emulator.close_connection` from this thread."""
        return self.call(
            self.emulator.close_connection(connection_id, code=code, reason=reason, hub=hub)
        )

    def add_upstream_fault(self, fault: UpstreamFault | None = None, **settings: Any
                           ) -> UpstreamFault:
        """:meth:`Emulator.add_upstream_fault` (thread-safe)."""
        return self.emulator.add_upstream_fault(fault, **settings)

    def clear_upstream_faults(self) -> int:
        """:meth:`Emulator.clear_upstream_faults` (thread-safe)."""
        return self.emulator.clear_upstream_faults()

    def stop(self, timeout: float = 30.0) -> None:
        """Close every connection and stop the thread; safe to call twice."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may have closed already
            loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run(emulator: Emulator, ready: Callable[[Emulator], None] | None = None) -> None:
    """Serve until Ctrl+C or SIGTERM; ``ready`` is called once the emulator listens."""

    async def serve() -> None:
        await emulator.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for name in ("SIGINT", "SIGTERM"):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(getattr(signal, name), stop.set)
        try:
            if ready is not None:
                ready(emulator)
            await stop.wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
