"""``python -m example_app``: the chat on http://127.0.0.1:5000, on the built-in emulator
unless WEBPUBSUB_CONNECTION_STRING names a real Azure Web PubSub resource.

Environment: EXAMPLE_HOST (127.0.0.1), EXAMPLE_PORT (5000), EMULATOR_PORT (8080),
WEBPUBSUB_CONNECTION_STRING, SECRET_KEY.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .server import ChatServer


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    emulator_port: int
    connection_string: str | None


def options_from(environ: Mapping[str, str]) -> Options:
    """Read the environment; ValueError names the variable that is wrong."""

    def port(name: str, default: int) -> int:
        value = environ.get(name, "").strip() or str(default)
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            raise ValueError(f"{name} must be a port number (0-65535), not {value!r}")
        return int(value)

    return Options(
        host=environ.get("EXAMPLE_HOST", "").strip() or "127.0.0.1",
        port=port("EXAMPLE_PORT", 5000),
        emulator_port=port("EMULATOR_PORT", 8080),
        connection_string=environ.get("WEBPUBSUB_CONNECTION_STRING") or None,
    )


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        options = options_from(os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = ChatServer(
        host=options.host,
        port=options.port,
        emulator_port=options.emulator_port,
        connection_string=options.connection_string,
    )
    try:
        server.start()
    except ImportError as exc:  # the emulator needs the [emulator] extra
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen ({exc.strerror or exc}); set EXAMPLE_PORT or EMULATOR_PORT "
            "to free ports",
            file=sys.stderr,
        )
        return 1
    lines = [f"  Chat: open {server.url}/"]
    if server.emulator is not None:
        lines.append(f"  Web PubSub emulator: {server.emulator.url}/ (its page shows a live trace)")
    else:
        lines.append(
            "  Azure Web PubSub: the hub's event handler must reach this app's /eventhandler, "
            f"for example through `awps-tunnel run --hub chat --upstream {server.url}`"
        )
    lines.append("  Ctrl+C stops.")
    print("", *lines, "", sep="\n", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # With a timeout: Python runs signal handlers in the main thread only, and a signal the
        # kernel delivers to another thread does not wake a wait without one.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
