"""``python -m example_app``: the chat on http://127.0.0.1:5000, on the built-in emulator
unless WEBPUBSUB_CONNECTION_STRING names a real Azure Web PubSub resource. ``--device`` runs a
simulated MQTT device too, a thermometer in #general (``example_app/device.py``).

Environment: EXAMPLE_HOST (127.0.0.1), EXAMPLE_PORT (5000), EMULATOR_PORT (8080),
EXAMPLE_LOG_LEVEL (INFO; DEBUG adds every HTTP request), EXAMPLE_ENTRA (1: the emulator plays
Microsoft Entra ID, and the app has no access key), WEBPUBSUB_CONNECTION_STRING,
SECRET_KEY.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import store
from .server import ChatServer, PortInUseError

if TYPE_CHECKING:
    from .device import Device

#: The variable that moves each of the example's ports.
PORT_VARIABLES = {"chat": "EXAMPLE_PORT", "emulator": "EMULATOR_PORT"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Loggers that write a record for every HTTP request: azure-core's HTTP logging policy (each
#: request and response of the service client, headers and all, at INFO) and werkzeug's access
#: log. A chat message is several requests; they are worth reading only when debugging.
PER_REQUEST_LOGGERS = ("azure", "werkzeug")
#: How long the example waits for its device to connect before saying it has not.
DEVICE_CONNECT_SECONDS = 15.0


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    emulator_port: int
    connection_string: str | None
    log_level: str = "INFO"
    entra: bool = False


def options_from(environ: Mapping[str, str]) -> Options:
    """Read the environment; ValueError names the variable that is wrong."""

    def port(name: str, default: int) -> int:
        value = environ.get(name, "").strip() or str(default)
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            raise ValueError(f"{name} must be a port number (0-65535), not {value!r}")
        return int(value)

    log_level = environ.get("EXAMPLE_LOG_LEVEL", "").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise ValueError(f"EXAMPLE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                         f"not {log_level!r}")
    return Options(
        host=environ.get("EXAMPLE_HOST", "").strip() or "127.0.0.1",
        port=port("EXAMPLE_PORT", 5000),
        emulator_port=port("EMULATOR_PORT", 8080),
        connection_string=environ.get("WEBPUBSUB_CONNECTION_STRING") or None,
        log_level=log_level,
        entra=environ.get("EXAMPLE_ENTRA", "").strip() == "1",
    )


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: settings are in the environment; ``--device`` adds the device."""
    parser = argparse.ArgumentParser(
        prog="python -m example_app",
        description="The example chat, on the built-in emulator unless "
        "WEBPUBSUB_CONNECTION_STRING is set. Its settings are environment variables: "
        "EXAMPLE_HOST, EXAMPLE_PORT, EMULATOR_PORT, EXAMPLE_LOG_LEVEL, EXAMPLE_ENTRA, SECRET_KEY.",
    )
    parser.add_argument(
        "--device", action="store_true",
        help="also run a simulated MQTT device (paho-mqtt): a thermometer, thermo, that posts "
        "readings in #general and answers \"@thermo status\" there",
    )
    return parser.parse_args(argv)


def start_device(server: ChatServer) -> Device:
    """The thermometer, connected to the running chat (or not yet: see its log)."""
    from .device import Device

    device = Device(server.url).start()
    device.online.wait(DEVICE_CONNECT_SECONDS)
    return device


def stop_device(device: Device, server: ChatServer, seconds: float = 5.0) -> None:
    """Disconnect the device, and give the chat the time to tell its room that it left before
    the emulator stops."""
    device.stop()
    deadline = time.monotonic() + seconds
    assert server.app is not None
    with server.app.app_context():
        while device.name in store.members(device.room) and time.monotonic() < deadline:
            time.sleep(0.05)


def configure_logging(level_name: str) -> None:
    """The example's choice, made here and not in the library (which never configures
    logging): ``level_name`` for the chat, the extension and the emulator; the per-request
    loggers at WARNING unless that is DEBUG."""
    level = logging.getLevelName(level_name)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def port_in_use(exc: PortInUseError) -> str:
    """What to do about a busy port, naming the variable that moves it."""
    variable = PORT_VARIABLES[exc.role]
    message = (
        f"error: port {exc.port} is in use by another program, so the {exc.role} cannot "
        f"listen on it. Set {variable} to a free port, for example:\n"
        f"  {variable}={exc.port + 1} ./run-example.sh"
    )
    if exc.role == "chat" and exc.port == 5000:
        message += "\n(On macOS the AirPlay Receiver listens on port 5000.)"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        options = options_from(os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if arguments.device:
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError:
            print("error: the device needs paho-mqtt: pip install 'paho-mqtt>=2.1' "
                  "(./run-example.sh installs it)", file=sys.stderr)
            return 1
    configure_logging(options.log_level)
    server = ChatServer(
        host=options.host,
        port=options.port,
        emulator_port=options.emulator_port,
        connection_string=options.connection_string,
        entra=options.entra,
    )
    try:
        server.start()
    except ImportError as exc:  # the emulator needs the [emulator] extra
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PortInUseError as exc:
        print(port_in_use(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen on {options.host} ({exc.strerror or exc}); check "
            "EXAMPLE_HOST, EXAMPLE_PORT and EMULATOR_PORT",
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
    try:
        device = start_device(server) if arguments.device else None
    except OSError as exc:  # the device could not sign in to the chat
        print(f"error: the device cannot reach the chat at {server.url}: {exc}", file=sys.stderr)
        server.stop()
        return 1
    if device is not None and device.online.is_set():
        lines.append(f"  MQTT device: {device.name} posts readings in #{device.room} every "
                     f"{device.interval:g} s; say “@{device.name} status” there")
    elif device is not None:
        lines.append(f"  MQTT device: {device.name} has not connected "
                     f"({device.refused or 'see the log'})")
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
        if device is not None:
            stop_device(device, server)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
