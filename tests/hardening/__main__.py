"""``python -m tests.hardening --long``: both long load runs, figures in docs/hardening.md.

Without ``--long`` it runs the short forms (the ones the test suite runs) and prints their
figures. ``--only upstream`` or ``--only churn`` runs one of the two. ``--wait-quiet MINUTES``
first waits (polling every 30 s, at most that long) until no benchmark, wrk or node process runs
and the load average is below 1.5, since both runs need the machine's cores to themselves.
The exit status is 1 when a requirement was missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from . import churn, procs, report, upstream

QUIET_LOAD = 1.5


def wait_quiet(minutes: float) -> None:
    deadline = time.monotonic() + minutes * 60
    while True:
        busy = procs.busy_processes()
        load = procs.load_average()[0]
        if not busy and load < QUIET_LOAD:
            return
        if time.monotonic() >= deadline:
            print(f"The machine is still busy (load {load:.2f}, {len(busy)} processes); "
                  "running anyway.", file=sys.stderr, flush=True)
            return
        print(f"Waiting for a quiet machine (load {load:.2f}, {len(busy)} busy processes)...",
              file=sys.stderr, flush=True)
        time.sleep(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hardening", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long forms; writes the report")
    parser.add_argument("--only", choices=("upstream", "churn"))
    parser.add_argument("--output", type=Path, default=procs.REPO / "docs" / "hardening.md",
                        help="the report of --long (default: docs/hardening.md)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="MINUTES")
    args = parser.parse_args(argv)
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)

    context = report.Context(
        machine=procs.machine(),
        versions=procs.versions(
            "flask-webpubsub", "flask", "werkzeug", "gunicorn", "aiohttp", "websockets",
            "azure-messaging-webpubsubservice",
        ),
        started=datetime.datetime.now(datetime.timezone.utc),
        load_average=procs.load_average(),
        busy=procs.busy_processes(),
        command=report.COMMAND + (f" --only {args.only}" if args.only else ""),
    )
    upstream_report = churn_report = None
    problems: list[str] = []
    if args.only in (None, "upstream"):
        print("Upstream load: the example chat under gunicorn...", file=sys.stderr, flush=True)
        upstream_report = upstream.run_upstream_load(
            upstream.LONG if args.long else upstream.SHORT
        )
        print(json.dumps(upstream_report.summary(), indent=2), flush=True)
        problems += upstream_report.problems()
    if args.only in (None, "churn"):
        print("Emulator churn...", file=sys.stderr, flush=True)
        churn_report = churn.run_churn(churn.LONG if args.long else churn.SHORT)
        print(json.dumps(churn_report.summary(), indent=2), flush=True)
        problems += churn_report.problems()
    if args.long:
        args.output.write_text(report.render(context, upstream_report, churn_report))
        print(f"Wrote {os.path.relpath(args.output)}", file=sys.stderr)
    for problem in problems:
        print(f"FAILED: {problem.split(': {')[0]}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
