"""The chat on a real HTTP server, with the built-in emulator when there is no Azure service.

Used by ``python -m example_app`` and by the browser test: ``ChatServer(port=0,
emulator_port=0).start()`` serves on free ports, ``stop()`` ends both.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server, select_address_family

from . import create_app, store

if TYPE_CHECKING:
    from flask_webpubsub.emulator import EmulatorThread


def browsable(host: str) -> str:
    """The address to open for a listening address: loopback for a wildcard."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104


class PortInUseError(OSError):
    """Another program listens on a port the chat needs: :attr:`role` says whose it was to be,
    ``"chat"`` or ``"emulator"``."""

    def __init__(self, role: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} is in use")
        self.role = role
        self.port = port


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a busy port is an exception the caller explains
    (werkzeug's own bind prints a message of its own and exits)."""
    try:
        return socket.create_server((host, port), family=select_address_family(host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError("chat", port) from exc
        raise


class ChatServer:
    """The chat app on werkzeug's threaded server, in a background thread.

    Without ``connection_string`` it starts the emulator on ``emulator_port`` and points its
    hub's event handler at the app; with ``entra``, the emulator plays Microsoft Entra ID too,
    as the service does with access keys disabled: the app gets no key, checks the emulator's
    bearer tokens on every event, and calls its REST API with the emulator's credential. Port 0
    picks a free port; the real ones are in :attr:`url` and :attr:`emulator`. A port that is
    taken raises :class:`PortInUseError`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5000,
        emulator_port: int = 8080,
        connection_string: str | None = None,
        config: Mapping[str, Any] | None = None,
        entra: bool = False,
    ) -> None:
        self.entra = entra
        self.host = host
        self.port = port
        self.emulator_port = emulator_port
        self.connection_string = connection_string
        self.config = dict(config or {})
        self.emulator: EmulatorThread | None = None
        self.app: Flask | None = None
        self._http: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to open the chat."""
        return f"http://{browsable(self.host)}:{self.port}"

    def start(self) -> ChatServer:
        # The app's socket first: the emulator needs its port for the event handler URL, and
        # the app needs the emulator's connection string. Requests wait until serving starts.
        listener = listen(self.host, self.port)
        try:
            http = make_server(
                self.host, self.port, _not_ready, threaded=True, fd=listener.fileno()
            )
        finally:
            listener.close()  # the server has its own duplicate of the socket
        self._http = http
        self.port = http.port
        try:
            settings: dict[str, Any] = {"WEBPUBSUB_CONNECTION_STRING": self.connection_string}
            if self.connection_string is None:
                try:
                    settings = self._start_emulator()
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise PortInUseError("emulator", self.emulator_port) from exc
                    raise
            app = create_app({**self.config, **settings})
            if self.emulator is not None:
                with app.app_context():
                    store.clear_connections()
            self.app = http.app = app
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=http.serve_forever, name="chat-http", daemon=True)
        self._thread.start()
        return self

    def _start_emulator(self) -> dict[str, Any]:
        """Start the emulator; the app's settings for it."""
        from flask_webpubsub.emulator import EmulatorThread, IdentityProvider
        from flask_webpubsub.emulator.identity import client_factory

        self.emulator = EmulatorThread(
            host=self.host,
            port=self.emulator_port,
            upstream=f"{self.url}/eventhandler",
            # The app is not serving yet; the emulator checks it before the first event.
            validate_upstream=False,
            identity=IdentityProvider() if self.entra else None,
        ).start()
        if not self.entra:
            return {"WEBPUBSUB_CONNECTION_STRING": self.emulator.connection_string}
        return {
            **self.emulator.emulator.app_settings,
            "WEBPUBSUB_CONNECTION_STRING": None,
            "WEBPUBSUB_CREDENTIAL": self.emulator.credential(),
            "WEBPUBSUB_CLIENT_FACTORY": client_factory,
        }

    def stop(self) -> None:
        """Stop the emulator (closing its connections), then the app's server."""
        if self.emulator is not None:
            self.emulator.stop()
        if self._http is not None:
            if self._thread is not None:
                self._http.shutdown()
                self._thread.join(10)
            self._http.server_close()
        self._thread = None
        self._http = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _not_ready(environ: Any, start_response: Any) -> Any:  # pragma: no cover - never served
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]
