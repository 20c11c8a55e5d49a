"""Emulator benchmarks: the place for them, filled in once ``flask_webpubsub.emulator`` exists.

Planned, with the targets of the benchmarks issue:
- connection setup rate: WebSocket connects per second to the emulator's client endpoint;
- group fan-out: one REST ``/groups/{g}/:send`` to 1,000 connected clients, deliveries per
  second (target >= 50,000) and send-to-receipt p50/p99 latency (target p99 < 100 ms);
- memory per idle connection: the emulator's RSS growth over 1,000 idle clients, divided by
  1,000 (target < 50 KB).
"""

from __future__ import annotations

import importlib.util

from benchmarks.results import Metric, Table


def available() -> bool:
    return importlib.util.find_spec("flask_webpubsub.emulator") is not None


def run() -> Table:
    table = Table(
        key="emulator",
        title="Emulator",
        metrics=[Metric("value", "value", "", higher_is_better=True)],
    )
    if not available():
        table.notes.append(
            "Not measured: flask_webpubsub.emulator does not exist yet in this tree."
        )
    else:
        table.notes.append(
            "Not measured yet: flask_webpubsub.emulator exists, but these benchmarks have not "
            "been written for it (see benchmarks/emulator.py)."
        )
    return table
