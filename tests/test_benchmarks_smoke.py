"""The benchmark command's smoke form runs end to end and produces figures (not how fast)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_produces_figures(tmp_path: Path) -> None:
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    # The smoke run installs nothing and takes about 15 s; the timeout only bounds a hang.
    command = ["-m", "benchmarks", "--smoke", "--output", str(report), "--json", str(raw)]
    subprocess.run(
        [sys.executable, *command],
        cwd=REPO,
        check=True,
        timeout=120,
        capture_output=True,
    )
    tables = json.loads(raw.read_text())

    inprocess = tables["inprocess"]["contenders"]
    for name in (
        "user event (text)",
        "user event (JSON)",
        "user event (binary)",
        "connect",
        "connected",
    ):
        samples = inprocess[name]["samples"]
        assert samples["bare_us"]
        assert min(samples["bare_us"]) > 0
        assert samples["ratio"]
        assert min(samples["ratio"]) > 0

    tokens = tables["tokens"]["contenders"]
    assert all(c["samples"]["us"] for c in tokens.values())
    assert len(tokens) == 3
    negotiate = tables["negotiate"]["contenders"]
    assert all(c["samples"]["per_s"] for c in negotiate.values())

    if shutil.which("wrk"):
        for phase in ("http_one", "http_whole"):
            ours = [
                c
                for name, c in tables[phase]["contenders"].items()
                if name.startswith("flask_webpubsub") and not c["skipped"]
            ]
            assert ours
            assert all(c["samples"]["rps"][0] > 0 for c in ours)

    mqtt = tables["mqtt"]["contenders"]
    assert not tables["mqtt"]["notes"][0].startswith("Not measured"), tables["mqtt"]["notes"]
    for name in (
        "MQTT connection setup (CONNECT to CONNACK, no upstream; connections/s)",
        "JSON connection setup (until the connected message, no upstream; connections/s)",
        "fan-out, JSON WebSocket (deliveries/s)",
        "fan-out, reliable JSON WebSocket (sequenceAck) (deliveries/s)",
        "fan-out, MQTT 5, QoS 0 (deliveries/s)",
        "fan-out, MQTT 5, QoS 1 (PUBACK) (deliveries/s)",
        "fan-out, MQTT 5, QoS 1 (PUBACK) / JSON, same repeat (x, target >= 0.8)",
    ):
        assert min(mqtt[name]["samples"]["value"]) > 0, name
    assert any(name.startswith("MQTT memory per idle session") for name in mqtt)

    text = report.read_text()
    assert "## Headline" in text
    assert "the bare Flask route" in text
    assert "## MQTT on the emulator" in text
