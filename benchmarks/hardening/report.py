"""docs/hardening.md: the latest figures of the long load runs, with the machine they ran on."""

from __future__ import annotations

import datetime
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .churn import ChurnReport
from .procs import Machine
from .slowclients import LONG, Case, SlowReport
from .upstream import UpstreamReport

COMMAND = ".venv/bin/python -m benchmarks.hardening --long"


@dataclass(frozen=True)
class Context:
    machine: Machine
    versions: dict[str, str]
    started: datetime.datetime
    #: The load average before the run, and other CPU-heavy processes seen then.
    load_average: tuple[float, float, float]
    busy: list[str]
    command: str = COMMAND


@dataclass(frozen=True)
class During:
    """What the machine did besides the runs, sampled every few seconds."""

    samples: int
    #: Samples that saw a benchmark, wrk or node process.
    busy_samples: int
    max_load: float
    commands: list[str]


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _paragraph(text: str) -> str:
    """Prose reflowed to the repository's line length."""
    return textwrap.fill(" ".join(text.split()), width=100, break_on_hyphens=False)


def _verdict(problems: list[str]) -> str:
    if not problems:
        return "**Passed.**"
    return "**Failed:** " + "; ".join(p.split(": {")[0] for p in problems) + "."


def render_upstream(report: UpstreamReport) -> str:
    load = report.load
    settings = report.settings
    measured = load.requests - load.warmup_requests
    growth = load.rss_growth
    low_high = load.rss_range_after_warmup()
    emulator_warm, emulator_end = load.other_rss_kib.get("emulator", (None, None))
    non_2xx = sum(count for status, count in load.statuses.items() if status >= 300)
    events = ", ".join(f"{name} {_n(count)}" for name, count in load.events.most_common())
    rows = [
        ("requests", f"{_n(load.requests)} ({_n(measured)} after a {_n(load.warmup_requests)}"
                     "-request warm-up)"),
        ("chat sessions (connect ... disconnected)", _n(load.connections)),
        ("events", events),
        ("duration", f"{load.seconds:.1f} s"),
        ("throughput: whole run / first minute / last minute",
         f"{_n(load.requests / load.seconds if load.seconds else 0)} / "
         f"{_n(load.rate(0, 60))} / {_n(load.rate(load.seconds - 60, load.seconds))} requests/s"),
        ("latency p50 / p99 / max",
         f"{load.percentile(0.5):.1f} / {load.percentile(0.99):.1f} / "
         f"{max(load.latencies_ms, default=0):.1f} ms"),
        ("non-2xx replies", _n(non_2xx)),
        ("transport errors", _n(sum(load.errors.values()))),
        ('application errors (replies of `kind: "error"`)', _n(sum(load.app_errors.values()))),
        ("WebSocket clients closed early", _n(sum(report.websocket_failures.values()))),
        ("warnings or tracebacks in the app's and the emulator's logs",
         _n(len(report.log_problems))),
        ("messages accepted by the app / delivered to the client / duplicates",
         f"{_n(report.messages_accepted)} / {_n(report.messages_delivered)} / "
         f"{_n(report.duplicate_deliveries)}"),
        ("server RSS after warm-up / at the end",
         f"{_mib(load.rss_after_warmup_kib)} / {_mib(load.rss_end_kib)}"),
        ("server RSS growth after warm-up",
         "n/a" if growth is None else f"{growth:+.2%}"
         + (f" (limit {settings.max_rss_growth:.0%})" if settings.max_rss_growth else "")),
        ("server RSS lowest / highest after warm-up (sampled every 2 s)",
         "n/a" if low_high is None else f"{_mib(low_high[0])} / {_mib(low_high[1])}"),
        ("emulator RSS after warm-up / at the end",
         f"{_mib(emulator_warm)} / {_mib(emulator_end)}"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    app = (
        "`benchmarks.hardening.chat_wsgi:app`" if settings.server == "granian"
        else "`example_app:create_app({...})`"
    )
    prose = _paragraph(f"""{settings.server_description} serves the example chat ({app}) on
loopback with a fresh SQLite database in a temporary
directory; the emulator (`python -m flask_webpubsub.emulator`) is its service, both in
subprocesses. {settings.concurrency} simulated clients each hold a real WebSocket connection
to the emulator and, over its connection id, send the service's signed events again and
again: `connect` (asking for the client's own room), `connected`, `join` another room,
`message` twice, `join` back, `message`, `leave`, `disconnected`. The app handles each for
real (SQLite, and REST calls to the emulator that move the connection and send each message
to the room), and every message it accepts must reach the client's WebSocket exactly once.
The run lasts at least {settings.min_seconds:g} s and until {_n(settings.target_requests)}
requests, at most {settings.max_seconds:g} s. RSS is the {settings.server} process and its
workers, from /proc; requests per second over time come from the same samples.""")
    return f"""## Upstream: the example chat under {settings.server}

{prose}

| figure | value |
|---|---|
{table}

{_verdict(report.problems())}
"""


def render_churn(report: ChurnReport) -> str:
    settings = report.settings
    after = (report.rss_after_kib - report.rss_baseline_kib) / 1024
    rows = [
        ("clients (concurrent slots) / groups",
         f"{_n(settings.clients)} / {_n(settings.groups)}"),
        ("duration", f"{report.seconds:.1f} s"),
        ("connections made", f"{_n(report.connections)} "
                             f"({_n(report.connections / report.seconds if report.seconds else 0)}"
                             "/s)"),
        ("open connections, peak / mean", f"{_n(report.open_peak)} / {_n(report.open_mean)}"),
        ("messages sent / acknowledged",
         f"{_n(report.messages_sent)} / {_n(report.messages_acked)}"),
        ("deliveries expected / received of those / missing",
         f"{_n(report.deliveries_expected)} / {_n(report.deliveries_matched)} / "
         f"{_n(report.missing)}"),
        ("deliveries received in all (including messages that crossed a join or leave)",
         _n(report.deliveries_received)),
        ("duplicates / strays (never sent, or sent to another group)",
         f"{_n(report.duplicates)} / {_n(report.strays)}"),
        ("other failures (refused, timed out, closed by the emulator)",
         _n(sum(report.failures.values()))
         + (f" ({', '.join(f'{k}: {v}' for k, v in report.failures.items())})"
            if report.failures else "")),
        ("emulator RSS before any client", _mib(report.rss_cold_kib)),
        (f"emulator RSS baseline (after a {settings.prime_seconds:g} s priming round, "
         f"{_n(report.prime_connections)} connections)", _mib(report.rss_baseline_kib)),
        ("emulator RSS peak during the run", _mib(report.rss_peak_kib)),
        ("emulator RSS after the clients left",
         f"{_mib(report.rss_after_kib)} ({after:+.1f} MiB; limit {_mib(report.rss_limit_kib)})"),
        ("connections, groups left in the emulator",
         ", ".join(f"{k} {v}" for k, v in report.leftover.items()) or "none"),
        ("warnings or tracebacks in the emulator's log", _n(len(report.log_problems))),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    prose = _paragraph(f"""The emulator runs in a subprocess without an upstream.
{settings.clients:,} client slots, each a raw `websockets` client with
`json.reliable.webpubsub.azure.v1`, repeat for
{settings.seconds:g} s: connect with a fresh token, join one of {settings.groups} groups
(wait for the ack), send {settings.messages_per_round} messages to it (each waiting for its
ack), stay {settings.stay[0]:g}-{settings.stay[1]:g} s, then leave (every other round
`leaveGroup` first, otherwise closing at once) and come back as a new connection; the first
connections of all slots wait, once joined, until all {settings.clients:,} are connected and
joined. A membership lasts from the join's ack to the start of the leave; an acknowledged
message is expected exactly once by every membership of its group that covers its whole
send-to-ack window; no connection may receive any message twice. Memory: CPython keeps the
arenas the first load grew (objects that outlive it, such as the libraries' URL caches, pin
them), so the baseline is taken after a priming round of the same shape; the emulator must
come back within {settings.rss_tolerance:.0%} or {settings.rss_tolerance_kib // 1024} MiB of
it (the larger) after the clients leave. The memory before any client is shown too.""")
    return f"""## Emulator: {settings.clients:,} reliable clients churning

{prose}

| figure | value |
|---|---|
{table}

{_verdict(report.problems())}
"""


#: The heading of the slow-client section, which ``--long --only slow`` replaces on its own.
SLOW_HEADING = "## Slow clients: the production set-up"
SLOW_COLUMNS = (
    "| set-up | slow-body + slow-header clients | measured | requests / failed "
    "| p50 / p99 / max (ms) | longest stall | recovery | throughput without them (req/s) "
    "| verdict |"
)


def render_slow(context: Context, runs: list[tuple[Case, SlowReport]]) -> str:
    """The slow-client section: every case's figures, and whether the recommended set-up held.
    It names its own date, machine and load, since it may be rerun alone."""
    first = runs[0][1].settings
    rows = []
    warnings: Counter[str] = Counter()
    notes: list[str] = []
    for case, report in runs:
        settings = report.settings
        during = report.during()
        recovery = report.recovery()
        throughput = report.throughput
        rows.append(" | ".join((
            f"| {case.setup.description}",
            f"{settings.slow_body} + {settings.slow_header}",
            f"{settings.seconds:g} s",
            f"{_n(len(during))} / {_n(report.failed(during))}",
            f"{report.percentile(during, 0.5):.1f} / {report.percentile(during, 0.99):.1f} / "
            f"{max((x.latency_ms for x in during), default=0):,.0f}",
            f"{report.longest_stall():.1f} s",
            "n/a" if recovery is None else f"{recovery:.2f} s",
            "n/a" if throughput is None else
            f"{_n(throughput.median)} ({_n(min(throughput.runs))}-{_n(max(throughput.runs))})",
            ("must hold: " if case.required else "")
            + ("held" if not report.service_problems() else "did not hold")
            + (f"; {len(report.log_problems)} warnings in the logs" if report.log_problems
               else "") + " |",
        )))
        warnings.update(set(report.log_problems))
        notes.extend(
            f"{line} (granian stopped in {report.stop_seconds.get('granian') or 0:.1f} s)"
            for line in report.shutdown_notes
        )
    problems = [
        f"{case.setup.description} with {report.settings.slow_body} + "
        f"{report.settings.slow_header}: {'; '.join(report.problems())}"
        for case, report in runs if case.required and report.problems()
    ]
    machine = context.machine
    load = ", ".join(f"{value:.2f}" for value in context.load_average)
    busy = "none" if not context.busy else _busy(sorted(set(context.busy)))
    versions = ", ".join(f"{name} {version}" for name, version in context.versions.items())
    run_line = _paragraph(f"""Run by `{context.command}` on {context.started:%Y-%m-%d %H:%M} UTC:
        {machine.describe()}; {versions}. Load average before the run: {load}; other CPU-heavy
        processes then: {busy}. The attackers, the measuring client, wrk and the servers share
        the machine's cores.""")
    prose = _paragraph(f"""Each set-up serves the benchmarks' signed-event app with direct
        dispatch (`benchmarks.hardening.signed_wsgi:app`) with {first.workers} granian workers on
        loopback; with nginx, nginx listens on loopback and passes requests to granian on
        another loopback port (its configuration: `benchmarks/hardening/nginx.conf.template`).
        Slow-body clients send a signed `echo` event's headers at once, with `Content-Length:
        4096`, then one byte of its body every {first.interval:g} s; slow-header clients send
        the request line, then one header line every {first.interval:g} s (the event's own, then
        `X-Slow-n`), never the blank line that ends them. A client the server drops comes back
        at once. Once every one is connected, a measuring client sends ordinary signed `echo`
        events, {first.rate:g} requests/s over {first.concurrency} keep-alive connections, for
        the time shown with the slow clients connected, then for {first.after_seconds:g} s after
        they leave; a request not answered within {first.timeout:g} s fails, and counts with its
        time in the percentiles. Longest stall: the longest time in the window in which no
        measuring request succeeded. Recovery: from the slow clients leaving to the next
        success. Throughput: wrk's requests/s for the benchmarks' signed text event (32
        connections, median and range of {LONG.throughput_runs} runs of
        {LONG.throughput_seconds} s) with no slow client; the short
        form of the requirement is `tests/hardening/test_slow_clients.py`.""")
    table = "\n".join(rows)
    logged = "\n\n" + _paragraph(
        "The servers' logs held: " + "; ".join(
            f"`{line[:120]}` (in {count} runs)" for line, count in warnings.most_common()
        ) + "."
    ) if warnings else ""
    if notes:
        logged += "\n\n" + _paragraph(
            "Not counted: granian logged, as it stopped, that it killed a worker that refused to "
            "stop, though it stopped well within its 30 s `--workers-kill-timeout`, after which "
            "it would kill one: " + "; ".join(f"`{note}`" for note in notes) + "."
        )
    return f"""{SLOW_HEADING}

{prose}

{run_line}

{SLOW_COLUMNS}
|{"---|" * SLOW_COLUMNS.count(" | ")}---|
{table}{logged}

{_verdict(problems)}
"""


#: The attacks section: measured by hand, kept as it is in every report.
ATTACKS = Path(__file__).with_name("attacks.md")


def splice_section(document: str, section: str, heading: str = SLOW_HEADING) -> str:
    """``document`` with its section under ``heading`` (up to the next ``## `` heading)
    replaced by ``section``, or ``section`` appended when it has none."""
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == heading]
    if not starts:
        return document.rstrip("\n") + "\n\n" + section
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


def _busy(commands: list[str]) -> str:
    shown = "; ".join(f"`{c[:70]}`" for c in commands[:3])
    return shown + ("; ..." if len(commands) > 3 else "")


def render(
    context: Context, during: During, upstreams: list[UpstreamReport],
    churn: ChurnReport | None, slow: list[tuple[Case, SlowReport]] | None = None,
) -> str:
    machine = context.machine
    versions = ", ".join(f"{name} {version}" for name, version in context.versions.items())
    load = ", ".join(f"{value:.2f}" for value in context.load_average)
    before = sorted(set(context.busy))
    busy = "none" if not before else f"{len(context.busy)}: {_busy(before)}"
    if during.busy_samples:
        share = during.busy_samples / during.samples
        while_running = (
            f"During the runs, such processes were seen in {share:.0%} of "
            f"{during.samples} samples (every 5 s), and the 1-minute load average reached "
            f"{during.max_load:.2f}, so the figures are lower than on a quiet machine: "
            f"{_busy(during.commands)}."
        )
    else:
        while_running = (
            f"None ran during the runs ({during.samples} samples, every 5 s); the 1-minute "
            f"load average reached {during.max_load:.2f}, the runs' own load."
        )
    header = _paragraph(f"""Written by `{context.command}` on {context.started:%Y-%m-%d %H:%M}
        UTC. Do not edit by hand: rerun it (`--only slow` rewrites the slow-client section
        alone). The short forms of the runs are tests in the normal suite
        (`tests/hardening/test_load_short.py` and `test_slow_clients.py`, under a minute each);
        this command runs the long forms and exits non-zero when a requirement is missed.""")
    machine_lines = "\n".join(
        textwrap.fill(line, width=100, subsequent_indent="  ", break_on_hyphens=False)
        for line in (
            f"- {machine.cpu}, {machine.cores} cores, {machine.memory_gib:.1f} GiB of memory; "
            f"{machine.system}; Python {machine.python}",
            f"- {versions}",
            f"- Load average before the run: {load}. Other CPU-heavy processes then "
            f"(benchmarks, wrk, node): {busy}. {while_running} The load generator, the servers "
            "and the clients share the machine's cores.",
        )
    )
    sections = [render_upstream(u) for u in upstreams]
    if churn is not None:
        sections.append(render_churn(churn))
    if slow:
        sections.append(render_slow(context, slow))
    sections.append(ATTACKS.read_text())
    return f"""# Hardening: load figures

{header}

## Machine and versions

{machine_lines}

{chr(10).join(sections)}"""
