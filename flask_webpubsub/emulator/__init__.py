"""A local Azure Web PubSub service: run and test apps with no Azure subscription.

Clients (browsers, ``azure-messaging-webpubsubclient``, any WebSocket library) connect to it;
it calls the app's event handler exactly as the service does (signed CloudEvents, abuse
protection, connection state); the app's service client (``azure-messaging-webpubsubservice``)
talks to its REST API. A read-only page at ``/`` shows hubs, connections and a live trace.
Needs the ``emulator`` extra: ``pip install 'flask-webpubsub[emulator]'``.

From the command line::

    python -m flask_webpubsub.emulator --port 8080 --upstream http://127.0.0.1:5000/eventhandler

From Python, in an event loop::

    emulator = Emulator(port=8080, upstream="http://127.0.0.1:5000/eventhandler", hubs=["chat"])
    await emulator.start()
    app.config["WEBPUBSUB_CONNECTION_STRING"] = emulator.connection_string
    ...
    await emulator.stop()

or from synchronous code (tests), in a background thread::

    with EmulatorThread(upstream="http://127.0.0.1:5000/eventhandler") as emulator:
        emulator.connection_string  # port 0 picks a free port
        emulator.drop(connection_id)  # cut a socket, to test recovery

With ``identity=IdentityProvider()`` (``--entra``) it plays Microsoft Entra ID too, with local
auth disabled: upstream calls carry the managed identity's bearer token, the REST API takes the
app's Entra token (:class:`EmulatorCredential`). Faults for tests of error paths:
``drop(connection_id)``, ``drop_half_open(connection_id)``,
``close_connection(connection_id, code=4000)``,
``add_upstream_fault(delay=2.0)`` or ``add_upstream_fault(status=503, count=1)``.

The public API: :class:`Emulator`, :class:`EmulatorThread`, :func:`run` (serve until Ctrl+C),
:class:`EventHandler` (per-hub event handler settings), :class:`IdentityProvider` and
:class:`EmulatorCredential` (Entra ID), :class:`UpstreamFault`, :class:`UpstreamValidationError`.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the Web PubSub emulator needs aiohttp: pip install 'flask-webpubsub[emulator]'"
    ) from exc

from flask_webpubsub.core.wire import SYSTEM_EVENTS

from .event_handlers import EventHandler
from .faults import UpstreamFault
from .identity import EmulatorCredential, IdentityProvider
from .runner import EmulatorThread, run
from .server import Emulator
from .upstream import UpstreamError, UpstreamValidationError

__all__ = [
    "SYSTEM_EVENTS",
    "Emulator",
    "EmulatorCredential",
    "EmulatorThread",
    "EventHandler",
    "IdentityProvider",
    "UpstreamError",
    "UpstreamFault",
    "UpstreamValidationError",
    "run",
]
