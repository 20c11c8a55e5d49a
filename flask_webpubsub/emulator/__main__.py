"""``python -m flask_webpubsub.emulator``: serve a local Web PubSub service until Ctrl+C.

``python -m flask_webpubsub.emulator fault ...`` injects a fault into one that is running,
through its HTTP API: drop a connection (reset, or half-open), close one with a code, make
upstream calls slow or fail, clear those faults.
"""

from __future__ import annotations

import argparse
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from flask_webpubsub.core.jsoncodec import decode_json, encode_json

from . import SYSTEM_EVENTS, Emulator, UpstreamValidationError, run
from .faults import UpstreamFault
from .identity import DEFAULT_UPSTREAM_AUDIENCE, IdentityProvider
from .server import DEFAULT_KEEPALIVE


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The serving options, or, after ``fault``, the fault command's (``command`` is set)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["fault"]:
        return _fault_parser().parse_args(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="python -m flask_webpubsub.emulator",
        description="A local Azure Web PubSub service for development and tests. "
        "'python -m flask_webpubsub.emulator fault --help' injects faults into a running one.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument(
        "--upstream",
        help="the app's event handler URL, e.g. http://127.0.0.1:5000/eventhandler "
        "({hub} and {event} are filled in); without it no event is forwarded",
    )
    parser.add_argument(
        "--hub", action="append", default=[], dest="hubs",
        help="a hub whose events go to the upstream (repeatable; default: every hub)",
    )
    parser.add_argument(
        "--allow-anonymous", action="append", default=[], metavar="HUB",
        help="a hub whose clients may connect without a token, as anonymousConnectPolicy allow "
        "(repeatable; * for every hub; default: none, as the service)",
    )
    parser.add_argument(
        "--access-key",
        help="the key tokens are signed with (at least 32 characters; random by default)",
    )
    parser.add_argument(
        "--system-events", default=",".join(sorted(SYSTEM_EVENTS)),
        help="system events to forward, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--user-events", default="*",
        help="user events to forward: * or comma-separated names (default: *)",
    )
    parser.add_argument("--upstream-timeout", type=float, default=20.0,
                        help="seconds to wait for the upstream (default: 20)")
    parser.add_argument(
        "--upstream-retry-delays", default="1,3,5", type=_delays,
        help="seconds between the tries of an upstream call that failed with 408, a 5xx or a "
        "network error, comma-separated; empty for no retries (default: 1,3,5, as the service)",
    )
    parser.add_argument(
        "--keepalive", type=_keepalive, default=int(DEFAULT_KEEPALIVE), metavar="SECONDS",
        help="the hub keep-alive interval, as webSocketKeepAliveIntervalInSeconds: a socket "
        "silent that long is pinged, and ended if it does not answer (1-120; default: "
        "%(default)s, as the service)",
    )
    parser.add_argument(
        "--fault", action="append", default=[], dest="faults", type=_fault,
        help="an upstream fault from the start, e.g. delay=2 or status=503,event=message,count=1 "
        "(repeatable; see the 'fault upstream' command)",
    )
    entra = parser.add_argument_group(
        "Microsoft Entra ID", "play the identity provider too, with local auth disabled: upstream "
        "calls carry a bearer token (no ce-signature), the REST API takes the tenant's tokens",
    )
    entra.add_argument("--entra", action="store_true", help="turn this mode on")
    entra.add_argument("--entra-audience", default=DEFAULT_UPSTREAM_AUDIENCE,
                       help="the upstream tokens' audience (default: %(default)s)")
    entra.add_argument("--entra-tenant-id", help="the tenant's GUID (default: a fixed one)")
    entra.add_argument("--entra-identity",
                       help="the managed identity's object id (default: a fixed one)")
    entra.add_argument("--entra-client-secret",
                       help="the app registration's secret (default: random)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return parser.parse_args(arguments)


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("use seconds separated by commas, e.g. 1,3,5") from None
    if any(not 0 <= delay <= 600 for delay in delays):
        raise argparse.ArgumentTypeError("each delay must be between 0 and 600 seconds")
    return delays


def _keepalive(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 120:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a keep-alive interval: use whole seconds from 1 to 120, as the "
            "service's webSocketKeepAliveIntervalInSeconds"
        )
    return seconds


def _fault(text: str) -> UpstreamFault:
    try:
        return UpstreamFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    if getattr(args, "command", None):
        return fault_command(args)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        identity = None
        if args.entra:
            identity = IdentityProvider(
                tenant_id=args.entra_tenant_id, managed_identity=args.entra_identity,
                audience=args.entra_audience, client_secret=args.entra_client_secret,
            )
        emulator = Emulator(
            host=args.host,
            port=args.port,
            upstream=args.upstream,
            hubs=args.hubs,
            access_key=args.access_key,
            system_events=[e for e in args.system_events.split(",") if e.strip()],
            user_events=args.user_events,
            upstream_timeout=args.upstream_timeout,
            upstream_retry_delays=args.upstream_retry_delays,
            upstream_faults=args.faults,
            heartbeat=args.keepalive,
            identity=identity,
            allow_anonymous=args.allow_anonymous,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def ready(emulator: Emulator) -> None:
        print(f"Web PubSub emulator on {emulator.url} (live trace: {emulator.url}/)", flush=True)
        if emulator.identity is None:
            print(f"WEBPUBSUB_CONNECTION_STRING={emulator.connection_string}", flush=True)
            return
        # The app's settings, then the environment of its REST credential (EmulatorCredential).
        for name, value in emulator.app_settings.items():
            shown = encode_json(value).decode() if isinstance(value, list) else value
            print(f"{name}={shown}", flush=True)
        for name, value in emulator.identity.credential_environment().items():
            print(f"{name}={value}", flush=True)

    try:
        run(emulator, ready)
    except UpstreamValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0


def _fault_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flask_webpubsub.emulator fault",
        description="Inject a fault into a running emulator, through its HTTP API.",
    )
    parser.add_argument("--emulator", default="http://127.0.0.1:8080",
                        help="the emulator's URL (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    drop = commands.add_parser("drop", help="cut a connection's socket without a close frame")
    drop.add_argument("connection_id")
    drop.add_argument("--half-open", action="store_true",
                      help="leave the socket open but silent instead: no close frame, no FIN, "
                      "no data (the client's keep-alive finds out)")
    close = commands.add_parser("close", help="close a connection with a code and reason")
    close.add_argument("connection_id")
    close.add_argument("--code", type=int, default=1000, help="close code (default: 1000)")
    close.add_argument("--reason", help="close reason (at most 120 bytes)")
    upstream = commands.add_parser(
        "upstream", help="make upstream calls slow or fail, e.g. delay=2 or "
        "status=503,event=message,count=1 (status=0: a network error)",
    )
    upstream.add_argument("fault", type=_fault)
    commands.add_parser("clear", help="remove every upstream fault")
    commands.add_parser("list", help="show the upstream faults in force")
    return parser


def fault_command(args: argparse.Namespace) -> int:
    """``fault drop|close|upstream|clear|list``: a fault in a running emulator."""
    base = args.emulator.rstrip("/") + "/_emulator"
    if args.command == "drop":
        action = ":dropHalfOpen" if args.half_open else ":drop"
        status, answer = _call("POST", f"{base}/connections/{args.connection_id}/{action}", {})
    elif args.command == "close":
        body: dict[str, Any] = {"code": args.code}
        if args.reason is not None:
            body["reason"] = args.reason
        status, answer = _call("POST", f"{base}/connections/{args.connection_id}/:close", body)
    elif args.command == "upstream":
        status, answer = _call("POST", f"{base}/faults/upstream", args.fault.settings())
    elif args.command == "clear":
        status, answer = _call("DELETE", f"{base}/faults/upstream", None)
    else:
        status, answer = _call("GET", f"{base}/faults/upstream", None)
    if status >= 400 or status == 0:
        print(f"error: {answer.get('message', answer)}", file=sys.stderr)
        return 1
    if answer:
        print(encode_json(answer).decode())
    return 0


def _call(method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else encode_json(body)
    request = urllib.request.Request(  # noqa: S310 - the user's own emulator URL
        url, data=data, method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            raw = response.read()
            return response.status, decode_json(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, decode_json(raw)
        except ValueError:
            return exc.code, {"message": raw.decode("utf-8", "replace")[:200]}
    except (OSError, ValueError) as exc:
        return 0, {"message": f"cannot reach the emulator at {url}: {exc}"}


if __name__ == "__main__":
    sys.exit(main())
