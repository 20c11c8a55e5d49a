"""Run every benchmark and write ``benchmarks/BENCHMARKS.md``.

    python -m benchmarks            # the full run, about 7 minutes; installs what it needs
    python -m benchmarks --smoke    # about 20 seconds: proves it works, not how fast

The full run installs wrk (Debian), the Python servers (a venv in benchmarks/.work/) and the
Node contender (npm, into benchmarks/.work/node) when they are missing. The smoke run installs
nothing by default and leaves out what is missing, saying so in its report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from benchmarks import emulator, inprocess, loopback, mqtt, negotiate
from benchmarks.apps import bare_app, extension_app
from benchmarks.emulator import EmulatorSettings
from benchmarks.fixtures import TEXT_EVENT
from benchmarks.loopback import Entry, LoadSettings
from benchmarks.mqtt import MqttSettings
from benchmarks.report import load_average, machine, node_versions, python_versions, render
from benchmarks.results import Metric, Table
from benchmarks.servers import (
    BENCHMARKS,
    NODE,
    NODE_DIR,
    PYTHON_SERVERS,
    WORK,
    Server,
    ensure_node,
    ensure_venv,
    ensure_wrk,
    log,
)

#: Requests/s over Node's in the same repeat of a head-to-head run.
PAIRED = Metric("paired", "req/s over Node's, same repeat", "x", higher_is_better=True)
#: The server configuration measured with the bare Flask app too, to show the limit over HTTP.
REFERENCE_SERVER = "bjoern"
#: The configuration the deployment guide recommends for production (its exact command is tested in
#: tests/test_production_server.py); the HTTP target is judged on it.
RECOMMENDED_SERVER = "granian WSGI (--http 1 --blocking-threads 1)"
RECOMMENDED = f"flask_webpubsub with direct dispatch on {RECOMMENDED_SERVER}"
PARTS = ("inprocess", "tokens", "http", "emulator", "mqtt")
HTTP_TABLES = ("http_one", "http_one_duel", "http_whole", "http_whole_duel")


@dataclass(frozen=True)
class Settings:
    repeats: int
    seconds_per_sample: float
    token_count: int
    load: LoadSettings
    #: Node against the fastest Python server of these HTTP phases, once more.
    duel: LoadSettings
    duels: tuple[str, ...]
    #: At most this many Python servers per HTTP phase (the smoke run keeps one).
    max_python_servers: int
    emulator: EmulatorSettings
    mqtt: MqttSettings


FULL = Settings(
    repeats=11,
    seconds_per_sample=0.15,
    token_count=3000,
    load=LoadSettings(seconds=3, warmup_seconds=1, repeats=3, connections=32),
    duel=LoadSettings(seconds=3, warmup_seconds=1, repeats=8, connections=32),
    duels=("http_one", "http_whole"),
    max_python_servers=len(PYTHON_SERVERS),
    emulator=EmulatorSettings(clients=1000, messages=50, repeats=5),
    mqtt=MqttSettings(
        clients=1000, messages=50, repeats=5, memory_steps=(1000, 2000), upstream=True
    ),
)
SMOKE = Settings(
    repeats=3,
    seconds_per_sample=0.02,
    token_count=100,
    load=LoadSettings(seconds=1, warmup_seconds=0, repeats=1, connections=8),
    duel=LoadSettings(seconds=1, warmup_seconds=0, repeats=1, connections=8),
    duels=("http_whole",),
    max_python_servers=1,
    emulator=EmulatorSettings(clients=20, messages=2, repeats=1),
    mqtt=MqttSettings(clients=20, messages=2, repeats=1, memory_steps=(20, 40), upstream=False),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="a fifteen-second run for CI")
    parser.add_argument(
        "--install",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="install missing tools (default: yes, but no with --smoke)",
    )
    parser.add_argument(
        "--only", action="append", choices=PARTS, help="run only this part (repeatable)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the report (default: benchmarks/BENCHMARKS.md, or "
        "benchmarks/.work/BENCHMARKS-smoke.md with --smoke)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    return parser.parse_args(argv)


def _apps() -> dict[str, Flask]:
    apps = {"bare": bare_app()}
    try:
        apps["extension"] = extension_app()
        apps["direct"] = extension_app(direct_dispatch=True)
    except ImportError as exc:
        log(f"flask_webpubsub is not importable ({exc}): measuring the bare route only")
    return apps


def _http(settings: Settings, install: bool) -> tuple[list[Table], str]:
    """Both HTTP phases; returns the tables and the Python used for the servers."""
    one = loopback.new_table("http_one", "One process each (server on CPU 1, wrk on CPU 0)")
    whole = loopback.new_table(
        "http_whole", "Whole machine: 2 workers each (Node cluster of 2), wrk on the same cores"
    )
    tables = [one, whole]
    python = ensure_venv(install)
    node_ready = ensure_node(install)
    if python is None:
        python = sys.executable
        log(f"no benchmark venv: Python servers run from {python}")
    if not ensure_wrk(install):
        for table in tables:
            table.notes.append("Not measured: wrk is not installed (run without --smoke).")
        return tables, python

    servers: list[Server] = []
    for server in PYTHON_SERVERS:
        if server.installed(python):
            servers.append(server)
        else:
            for table in tables:
                table.contender(f"flask_webpubsub on {server.name}").skipped = "not installed"
    servers = servers[: settings.max_python_servers]

    def entries(multi_process: bool) -> list[Entry]:
        chosen = [Entry(NODE.name, NODE, "", python)] if node_ready else []
        for server in servers:
            if server.multi_process or not multi_process:
                chosen.append(
                    Entry(f"flask_webpubsub on {server.name}", server, "extension", python)
                )
        recommended = [s for s in servers if s.name == RECOMMENDED_SERVER]
        if recommended:
            chosen.append(Entry(RECOMMENDED, recommended[0], "direct", python))
        reference = [s for s in servers if s.name == REFERENCE_SERVER]
        if multi_process and reference:
            chosen.append(
                Entry(
                    f"bare Flask route on {REFERENCE_SERVER} (the limit)",
                    reference[0],
                    "bare",
                    python,
                )
            )
        return chosen

    if not node_ready:
        for table in tables:
            table.contender(NODE.name).skipped = "node or its npm packages are not installed"
    loopback.run_phase(one, entries(False), 1, settings.load, pinned=True)
    loopback.run_phase(whole, entries(True), 2, settings.load, pinned=False)
    for table in tables:
        table.notes.append(_wrk_note(settings.load, "alternating with the others"))
    for survey, workers, pinned in ((one, 1, True), (whole, 2, False)):
        if survey.key not in settings.duels:
            continue
        duel = _head_to_head(survey, entries(workers > 1), workers, settings.duel, pinned)
        if duel is not None:
            tables.append(duel)
    return tables, python


def _wrk_note(load: LoadSettings, how: str) -> str:
    return (
        f"wrk: 1 thread, {load.connections} keep-alive connections, {load.seconds} s per run, "
        f"{load.repeats} runs per contender {how}; the request is the signed text user event "
        f"({len(TEXT_EVENT.body)} bytes), answered with the same text."
    )


def _head_to_head(
    survey: Table, entries: list[Entry], workers: int, load: LoadSettings, pinned: bool
) -> Table | None:
    """Node against the recommended configuration and the survey's fastest Python server
    again, A B C A B C, with more repeats: the survey spaces each contender's runs minutes
    apart, which lets drift in."""
    best = _best_python(survey)
    if best is None or survey.contender(NODE.name).median("rps") is None:
        return None
    chosen = [e for e in entries if e.label in (NODE.name, RECOMMENDED, best)]
    table = loopback.new_table(f"{survey.key}_duel", f"{survey.title}: head to head")
    table.metrics.append(PAIRED)
    loopback.run_phase(table, chosen, workers, load, pinned)
    node = table.contender(NODE.name)
    for label in (e.label for e in chosen if e.label != NODE.name):
        ours = table.contender(label)
        if not (ours.skipped or node.skipped):  # then both ran every repeat
            for mine, theirs in zip(ours.samples["rps"], node.samples["rps"], strict=True):
                ours.add(PAIRED.key, mine / theirs)
    table.notes.append(_wrk_note(load, "alternating A B C A B C"))
    return table


def _best_python(table: Table) -> str | None:
    ranked = [
        c
        for c in table.contenders
        if c.name.startswith("flask_webpubsub")
        and c.median("rps") is not None
        and not c.disqualified
    ]
    if not ranked:
        return None
    return max(ranked, key=lambda c: c.median("rps") or 0.0).name


def _verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "missed"


def headline(tables: dict[str, Table]) -> list[str]:
    lines = []
    if "inprocess" in tables:
        table = tables["inprocess"]
        ratio = table.contender(TEXT_EVENT.name).median("ratio")
        if ratio is not None:
            worst = max(
                (c.median("ratio") or 0.0, c.name)
                for c in table.contenders
                if c.name.startswith("user event")
            )
            direct = table.contender(TEXT_EVENT.name).median("direct_ratio")
            lines.append(
                f"- In-process, {TEXT_EVENT.name}: **{ratio:.2f}x** the bare Flask route "
                f"(target <= 1.15x: {_verdict(ratio, 1.15, False)}); worst user event "
                f"{worst[0]:.2f}x ({worst[1]}); with direct dispatch {direct or 0:.2f}x."
            )
    entra = tables.get("inprocess_entra")
    entra_ratio = entra.contender(TEXT_EVENT.name).median("ratio") if entra else None
    if entra_ratio is not None:
        lines.append(
            f"- In-process, Entra ID bearer token instead of ce-signature: **{entra_ratio:.2f}x** "
            f"the access-key path (target <= 1.2x: {_verdict(entra_ratio, 1.2, False)})."
        )
    for key, label in (("http_whole", "Whole machine"), ("http_one", "One process")):
        http = tables.get(f"{key}_duel") or tables.get(key)
        best = _best_python(http) if http else None
        if http is None or best is None or http.contender(NODE.name).median("rps") is None:
            continue

        def versus(name: str, table: Table = http) -> tuple[float, float]:
            rps = table.contender(name).median(PAIRED.key) or table.ratio(name, "rps")
            return rps or 0.0, table.ratio(name, "p99_ms") or 0.0

        parts = []
        if any(c.name == RECOMMENDED and c.median("rps") for c in http.contenders):
            speed, tail = versus(RECOMMENDED)
            verdict = (
                f" (target >= 1.0x, p99 no worse: {_verdict(speed, 1.0, True)}, p99 "
                f"{_verdict(tail, 1.0, False)})"
                if key == "http_whole"
                else ""
            )
            parts.append(
                f"the recommended {RECOMMENDED} does **{speed:.2f}x** Node's requests/s with "
                f"{tail:.2f}x its p99 latency{verdict}"
            )
        if best != RECOMMENDED:
            speed, tail = versus(best)
            parts.append(f"the fastest, {best}, {speed:.2f}x with {tail:.2f}x its p99")
        lines.append(f"- {label} over HTTP, head to head: " + "; ".join(parts) + ".")
    if "tokens" in tables:
        ratio = tables["tokens"].ratio(negotiate.OURS)
        lines.append(
            f"- Token builder: **{ratio or 0:.2f}x** the time of a bare jwt.encode "
            f"(target <= 1.3x: {_verdict(ratio, 1.3, False)}); the SDK's "
            f"get_client_access_token {tables['tokens'].ratio(negotiate.SDK) or 0:.2f}x."
        )
    if "negotiate" in tables:
        ratio = tables["negotiate"].ratio(negotiate.OUR_ROUTE)
        if ratio is not None:
            lines.append(
                f"- Negotiate route: {ratio:.2f}x the tokens/s of a Flask route "
                "around the SDK's get_client_access_token."
            )
    if "emulator" in tables and tables["emulator"].contenders:
        table = tables["emulator"]
        deliveries = table.contender(emulator.DELIVERIES).median("value")
        p99 = table.contender(emulator.P99).median("value")
        memory = table.contender(emulator.MEMORY).median("value")
        lines.append(
            f"- Emulator: {deliveries or 0:,.0f} deliveries/s to a group "
            f"(target >= 50,000: {_verdict(deliveries, 50000, True)}), p99 {p99 or 0:.0f} ms "
            f"(target < 100 ms: {_verdict(p99, 100, False)}), {memory or 0:.0f} KB per idle "
            f"connection (target < 50 KB: {_verdict(memory, 50, False)})."
        )
    if "mqtt" in tables and tables["mqtt"].contenders:
        lines.append(_mqtt_headline(tables["mqtt"]))
    return lines


def _mqtt_headline(table: Table) -> str:
    def median(name: str) -> float:
        return table.contender(name).median("value") or 0.0

    qos0, qos1 = (median(mqtt.ratio_name(n)) for n in (mqtt.QOS0, mqtt.QOS1))
    reliable = median(mqtt.ratio_name(mqtt.QOS1, mqtt.RELIABLE))
    largest = max(mqtt.memory_steps(table), default=0)
    return (
        f"- MQTT on the emulator: group fan-out to MQTT 5 subscribers at **{qos0:.2f}x** the "
        f"JSON WebSocket clients' deliveries/s at QoS 0 ({_verdict(qos0 or None, 0.8, True)}) "
        f"and **{qos1:.2f}x** at QoS 1 ({_verdict(qos1 or None, 0.8, True)}; target >= 0.8x), "
        f"where each delivery is acknowledged: {reliable:.2f}x reliable JSON clients that "
        "acknowledge each message; "
        f"{median(mqtt.setup_name('MQTT', False)):,.0f} MQTT sessions/s set up against "
        f"{median(mqtt.setup_name('JSON', False)):,.0f} JSON connections/s; "
        f"{median(mqtt.memory_name('MQTT', largest)):.0f} KB per idle MQTT session against "
        f"{median(mqtt.memory_name('JSON', largest)):.0f} KB per JSON connection "
        f"({largest:,} of each)."
    )


def _mqtt_text(load: str, command: str) -> list[str]:
    """Where and when this part ran: it is also run alone (``--only mqtt``)."""
    facts = machine()
    return [
        f"Measured by `{command}` on {facts['date']}: {facts['cpu']}, {facts['cores']} cores, "
        f"{facts['os']}, Python {sys.version.split()[0]}; load average {load} before this part.",
    ]


METHOD = [
    "- In-process: `app(environ, start_response)` with a prebuilt environ and a fresh body "
    "stream per call, the response iterated and closed as a server would. The bare route and "
    "flask_webpubsub alternate in every repeat (A B A B ...); the ratio is taken per repeat.",
    "- Every contender's answer is checked before it is timed (status and echoed body): a fast "
    "wrong answer is not a result. Under load, any non-2xx answer fails the contender.",
    "- HTTP: all servers of a phase are started first, then measured in turn, repeat after "
    "repeat. Node runs `benchmarks/node/server.js` (the official handler, which checks no "
    "signature; flask_webpubsub verifies HMAC-SHA256 on every request).",
    "- Servers run from a venv in benchmarks/.work/ with the project on PYTHONPATH; their exact "
    "commands are in benchmarks/servers.py.",
    "- Emulator: the clients are minimal WebSocket readers (benchmarks/wsload.py), as wrk is for "
    "HTTP: a general-purpose client library costs about as much per received message as the "
    "emulator does to send it, and on two cores it would set the rate. The handshake is "
    "checked, pings are answered, and after each timed repeat every client is checked to have "
    "received every message once, in order.",
    "- MQTT: the clients are minimal MQTT 5 clients over WebSocket (benchmarks/mqttload.py) on the "
    "same reader, building and checking packets with the emulator's own MQTT codec, with a "
    "keep-alive of 60 s (paho-mqtt's and mqtt.js's default); while timed "
    "they only store frames and answer each QoS 1 PUBLISH with a PUBACK, and every packet is "
    "decoded and checked afterwards (topic, QoS, packet id, each message once, in order, one "
    "PUBACK per message). Messages are sent through the REST API (send to group, text), so the "
    "JSON and MQTT fan-outs have the same sender; the QoS 0 subscribers subscribe at QoS 0 "
    "(REST sends are QoS 1). The reliable JSON clients answer each message with a sequenceAck "
    "at once, as the QoS 1 subscribers answer with a PUBACK. The four fan-outs alternate in "
    "every repeat, in one emulator. With the "
    "upstream, the emulator forwards only `connect`, to the benchmark app (direct dispatch) "
    "under granian, one worker.",
]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    install = (not args.smoke) if args.install is None else args.install
    parts = set(args.only or PARTS)
    output = args.output or (
        WORK / "BENCHMARKS-smoke.md" if args.smoke else BENCHMARKS / "BENCHMARKS.md"
    )
    started = time.monotonic()
    load_before = load_average()
    tables: dict[str, Table] = {}
    python = sys.executable

    if "inprocess" in parts:
        log("in-process upstream events")
        tables["inprocess"] = inprocess.run(
            _apps(), repeats=settings.repeats, seconds_per_sample=settings.seconds_per_sample
        )
        tables["inprocess_entra"] = inprocess.run_entra(
            repeats=settings.repeats, seconds_per_sample=settings.seconds_per_sample
        )
    if "tokens" in parts:
        log("client access tokens")
        tables["tokens"] = negotiate.run(repeats=settings.repeats, count=settings.token_count)
        tables["negotiate"] = negotiate.run_route(
            repeats=settings.repeats, seconds_per_sample=settings.seconds_per_sample
        )
    if "http" in parts:
        log("HTTP on loopback")
        http_tables, python = _http(settings, install)
        tables.update((t.key, t) for t in http_tables)
    if "emulator" in parts:
        log("emulator")
        tables["emulator"] = emulator.run(settings.emulator)
    mqtt_text: list[str] = []
    if "mqtt" in parts:
        log("MQTT on the emulator")
        command = "python -m benchmarks" + ("" if args.only is None else "".join(
            f" --only {part}" for part in sorted(parts)
        ))
        mqtt_text = _mqtt_text(load_average(), command)
        tables["mqtt"] = mqtt.run(settings.mqtt)

    versions = python_versions(python)
    versions.update(node_versions(NODE_DIR / "node_modules"))
    sections: list[tuple[str, list[str], list[Table]]] = [
        (
            "Extension overhead in-process",
            [],
            [tables[k] for k in ("inprocess", "inprocess_entra") if k in tables],
        ),
        (
            "HTTP on loopback against @azure/web-pubsub-express",
            [],
            [tables[k] for k in HTTP_TABLES if k in tables],
        ),
        (
            "Negotiate and client access tokens",
            [],
            [tables[k] for k in ("tokens", "negotiate") if k in tables],
        ),
        ("Emulator", [], [tables[k] for k in ("emulator",) if k in tables]),
        ("MQTT on the emulator", mqtt_text, [tables[k] for k in ("mqtt",) if k in tables]),
    ]
    elapsed = time.monotonic() - started
    method = [
        *METHOD,
        f"- This run took {elapsed:.0f} s"
        + (" (smoke: figures prove the harness works, not how fast)." if args.smoke else "."),
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        render(
            facts={**machine(), "load": load_before},
            versions=versions,
            headline=headline(tables),
            sections=[s for s in sections if s[2]],
            method=method,
        )
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({k: t.to_json() for k, t in tables.items()}, indent=1))
    log(f"wrote {output} in {elapsed:.0f} s")
    return 0
