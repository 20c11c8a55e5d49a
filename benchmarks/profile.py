"""Where the upstream endpoint's time goes: ``python -m benchmarks.profile [EVENT] [--calls N]``.

Profiles flask_webpubsub in-process on one event type (the text user event by default) with
cProfile and prints the functions that cost the most, own time first. For a sampling view of a
real server under load, run py-spy from the benchmark venv (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from benchmarks.apps import extension_app
from benchmarks.fixtures import EVENTS
from benchmarks.inprocess import check, prepare


def main(argv: list[str] | None = None) -> int:
    names = [event.name for event in EVENTS]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("event", nargs="?", default=names[0], choices=names)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    args = parser.parse_args(argv)
    event = next(e for e in EVENTS if e.name == args.event)
    call = prepare(extension_app(), event)
    check(call, event, "flask_webpubsub")
    for _ in range(1000):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
