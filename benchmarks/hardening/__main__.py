"""``python -m benchmarks.hardening --long``: the long load runs, figures in docs/hardening.md.

Without ``--long`` it runs the short forms (the ones the test suite runs) and prints their
figures. The upstream run is made twice, under gunicorn (sync workers, as issue 8 asks) and
under granian (the recommended server); the slow-client run attacks the production
set-up with slow-body and slow-header clients (and, in its long form, granian alone too, for the
record). ``--only gunicorn``, ``--only granian``, ``--only upstream`` (both), ``--only churn`` or
``--only slow`` runs a part; ``--long --only slow`` rewrites the slow-client section of the report
alone and leaves the rest of it as it was. ``--wait-quiet MINUTES`` first waits (polling every
30 s, at most that long) until no benchmark, wrk or node process runs and the load average is
below 1.5, since the runs need the machine's cores to themselves. The exit status is 1 when a
requirement was missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from pathlib import Path

from . import churn, procs, report, slowclients, upstream

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


class Monitor:
    """Watches the machine during the runs: the load average and other CPU-heavy processes."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples = 0
        self.busy_samples = 0
        self.max_load = 0.0
        self.commands: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hardening-monitor", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = procs.busy_processes()
            self.samples += 1
            self.busy_samples += bool(busy)
            self.commands.update(busy)
            self.max_load = max(self.max_load, procs.load_average()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def during(self) -> report.During:
        return report.During(
            samples=self.samples, busy_samples=self.busy_samples, max_load=self.max_load,
            commands=sorted(self.commands),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hardening", description=__doc__
    )
    parser.add_argument("--long", action="store_true", help="the long forms; writes the report")
    parser.add_argument("--only", choices=("upstream", "gunicorn", "granian", "churn", "slow"))
    parser.add_argument("--output", type=Path, default=procs.REPO / "docs" / "hardening.md",
                        help="the report of --long (default: docs/hardening.md)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="MINUTES")
    args = parser.parse_args(argv)
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)

    context = report.Context(
        machine=procs.machine(),
        versions=procs.versions(
            "flask-webpubsub", "flask", "werkzeug", "gunicorn", "granian", "aiohttp", "websockets",
            "azure-messaging-webpubsubservice",
        ) | {"nginx": procs.nginx_version()},
        started=datetime.datetime.now(datetime.timezone.utc),
        load_average=procs.load_average(),
        busy=procs.busy_processes(),
        command=report.COMMAND + (f" --only {args.only}" if args.only else ""),
    )
    problems: list[str] = []
    monitor = Monitor()
    with monitor:
        upstream_reports, churn_report, slow_runs = run(args.long, args.only, problems)
    if args.long and args.only == "slow" and args.output.exists():
        args.output.write_text(report.splice_section(
            args.output.read_text(), report.render_slow(context, slow_runs)
        ))
        print(f"Rewrote the slow-client section of {os.path.relpath(args.output)}",
              file=sys.stderr)
    elif args.long:
        args.output.write_text(report.render(
            context, monitor.during(), upstream_reports, churn_report, slow_runs
        ))
        print(f"Wrote {os.path.relpath(args.output)}", file=sys.stderr)
    for problem in problems:
        print(f"FAILED: {problem.split(': {')[0]}", file=sys.stderr)
    return 1 if problems else 0


def run(
    long: bool, only: str | None, problems: list[str]
) -> tuple[
    list[upstream.UpstreamReport], churn.ChurnReport | None,
    list[tuple[slowclients.Case, slowclients.SlowReport]],
]:
    upstream_reports = []
    forms = {
        "gunicorn": upstream.LONG if long else upstream.SHORT,
        "granian": upstream.LONG_GRANIAN if long else upstream.SHORT_GRANIAN,
    }
    for server, settings in forms.items():
        if only in (None, "upstream", server):
            print(f"Upstream load: the example chat under {server}...", file=sys.stderr,
                  flush=True)
            result = upstream.run_upstream_load(settings)
            print(json.dumps(result.summary(), indent=2), flush=True)
            problems += result.problems()
            upstream_reports.append(result)
    churn_report = None
    if only in (None, "churn"):
        print("Emulator churn...", file=sys.stderr, flush=True)
        churn_report = churn.run_churn(churn.LONG if long else churn.SHORT)
        print(json.dumps(churn_report.summary(), indent=2), flush=True)
        problems += churn_report.problems()
    slow_runs = []
    if only in (None, "slow"):
        slow_runs = slowclients.run_cases(
            slowclients.LONG_CASES if long else slowclients.SHORT_CASES
        )
        for case, slow in slow_runs:
            print(json.dumps(slow.summary(), indent=2), flush=True)
            if case.required:
                problems += [f"slow clients: {problem}" for problem in slow.problems()]
    return upstream_reports, churn_report, slow_runs


if __name__ == "__main__":
    sys.exit(main())
