"""``python -m flask_webpubsub.emulator``: serve a local Web PubSub service until Ctrl+C."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import SYSTEM_EVENTS, Emulator, UpstreamValidationError, run


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flask_webpubsub.emulator",
        description="A local Azure Web PubSub service for development and tests.",
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
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        emulator = Emulator(
            host=args.host,
            port=args.port,
            upstream=args.upstream,
            hubs=args.hubs,
            access_key=args.access_key,
            system_events=[e for e in args.system_events.split(",") if e.strip()],
            user_events=args.user_events,
            upstream_timeout=args.upstream_timeout,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def ready(emulator: Emulator) -> None:
        print(f"Web PubSub emulator on {emulator.url} (live trace: {emulator.url}/)", flush=True)
        print(f"WEBPUBSUB_CONNECTION_STRING={emulator.connection_string}", flush=True)

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


if __name__ == "__main__":
    sys.exit(main())
