"""Fault injection on upstream calls: make them slow, or fail, to test an app's (and its
clients') error paths. Faults on client connections (drop, drop half-open, close with a code)
are the service's own operations (:meth:`~.service.Service.drop`,
:meth:`~.service.Service.drop_half_open`, :meth:`~.service.Service.close`).

A fault applies to the upstream calls it matches (a hub, an event, or all), to each attempt
including retries, ``count`` times or until it is cleared. The same notation serves the command
line (``--fault "status=503,event=message,count=1"``), the page's HTTP API and Python.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: Network failure instead of an answer: the upstream closed the connection without a reply.
NETWORK_ERROR = 0


@dataclass
class UpstreamFault:
    """What happens to matching upstream calls.

    ``delay``: seconds to wait before the call is made (past the upstream timeout, the call
    times out). ``status``: answer this HTTP status without calling the upstream (``0``: fail as
    if the connection was lost). ``hub`` and ``event`` (an event name: ``connect``,
    ``message``, ...) narrow what it matches; ``count`` is how many calls it applies to
    (None: every call until cleared).
    """

    delay: float = 0.0
    status: int | None = None
    hub: str | None = None
    event: str | None = None
    count: int | None = None
    id: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.delay <= 3600:
            raise ValueError("delay must be between 0 and 3600 seconds")
        if self.status is not None and self.status != NETWORK_ERROR and not (
            100 <= self.status <= 599
        ):
            raise ValueError("status must be an HTTP status (100-599), or 0 for a network error")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if not self.delay and self.status is None:
            raise ValueError("a fault needs a delay, a status, or both")
        if self.hub is not None:
            self.hub = self.hub.lower()

    @classmethod
    def parse(cls, text: str) -> UpstreamFault:
        """From ``delay=2,status=503,hub=chat,event=message,count=1`` (any of them)."""
        values: dict[str, Any] = {}
        for item in text.split(","):
            name, separator, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not item.strip():
                continue
            if not separator or not value:
                raise ValueError(f"{item.strip()!r} is not name=value")
            if name not in ("delay", "status", "hub", "event", "count"):
                raise ValueError(f"unknown fault setting {name!r}: use delay, status, hub, "
                                 "event or count")
            values[name] = value
        return cls.from_json(values)

    @classmethod
    def from_json(cls, values: Any) -> UpstreamFault:
        """From a JSON object (the HTTP API), checking every type."""
        if not isinstance(values, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(values) - {"delay", "status", "hub", "event", "count"}
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}")
        try:
            return cls(
                delay=_number(values.get("delay", 0)),
                status=_optional_int(values.get("status"), "status"),
                hub=_optional_str(values.get("hub")),
                event=_optional_str(values.get("event")),
                count=_optional_int(values.get("count"), "count"),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc) or "invalid fault") from None

    def matches(self, hub: str, event: str) -> bool:
        return (self.hub is None or self.hub == hub.lower()) and (
            self.event is None or self.event == event
        )

    def settings(self) -> dict[str, Any]:
        """What :meth:`from_json` takes to make this fault again."""
        return {name: value for name, value in asdict(self).items()
                if value is not None and name != "id"}

    def describe(self) -> dict[str, Any]:
        """Its settings and its number."""
        return {**self.settings(), "id": self.id}


class UpstreamFaults:
    """The faults in force, in the order they were added; the first that matches a call
    applies. Thread-safe: tests add faults from their own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[UpstreamFault] = []
        self._next_id = 1

    def add(self, fault: UpstreamFault) -> UpstreamFault:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Remove every fault; how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
        return count

    def take(self, hub: str, event: str) -> UpstreamFault | None:
        """The fault for one call, counted (a fault whose count runs out is removed)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(hub, event):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._faults]


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer") from None


def _number(value: Any) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("delay must be a number of seconds") from None


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError("hub and event must be non-empty strings")
    return value
