"""The live trace: the last events and messages, for the web page (like the portal's Live Trace)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

#: How many entries the page can show.
TRACE_LENGTH = 300


@dataclass(frozen=True)
class TraceEntry:
    id: int
    time: float
    #: ``connection``, ``upstream``, ``message``, ``rest`` or ``error``.
    category: str
    hub: str
    connection_id: str | None
    text: str


class LiveTrace:
    """A bounded log; ``since(n)`` gives the entries after id ``n``."""

    def __init__(self, length: int = TRACE_LENGTH) -> None:
        self._entries: deque[TraceEntry] = deque(maxlen=length)
        self._next_id = 1

    def add(self, category: str, hub: str, connection_id: str | None, text: str) -> None:
        self._entries.append(
            TraceEntry(self._next_id, time.time(), category, hub, connection_id, text)
        )
        self._next_id += 1

    def since(self, after: int = 0) -> list[dict[str, Any]]:
        return [asdict(entry) for entry in self._entries if entry.id > after]
