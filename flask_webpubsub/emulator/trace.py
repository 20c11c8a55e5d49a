"""The live trace: the last events and messages, for the dashboard (like the portal's Live Trace).

A ring buffer of :data:`TRACE_LENGTH` entries. Each upstream call is one entry whose ``detail``
holds its request and reply (method, URL, headers, bodies, status, duration), masked by
:mod:`.redact` and each body cut to :data:`BODY_LIMIT` characters, so the trace holds a few
megabytes at most. A one-line note of a call (``connected -> 200``) that repeats the entry of
that call is left out. Every entry's text is masked too (:func:`.redact.mask_text`): a message
that carries a token or a password shows ``***`` in its place.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .redact import mask_body, mask_headers, mask_text, masked_url, redact_tokens

#: How many entries the trace keeps (the oldest go first).
TRACE_LENGTH = 300
#: The most characters of a body (and of a header's value) an upstream call's entry keeps.
BODY_LIMIT = 4096
#: The kinds of entry, for the dashboard's filters.
CATEGORIES = ("connection", "upstream", "message", "rest", "error")


@dataclass(frozen=True)
class TraceEntry:
    id: int
    time: float
    #: One of :data:`CATEGORIES`.
    category: str
    hub: str
    connection_id: str | None
    text: str
    #: An upstream call's ``request`` and ``reply`` (or ``error``), ``durationMs``, ``attempts``.
    detail: dict[str, Any] | None = None


class LiveTrace:
    """A bounded log; ``since(n)`` gives the entries after id ``n``."""

    def __init__(self, length: int = TRACE_LENGTH) -> None:
        self.length = length
        self._entries: deque[TraceEntry] = deque(maxlen=length)
        self._next_id = 1
        #: The last call recorded for each connection (hub, connection id, text).
        self._last_calls: dict[str | None, tuple[str, str]] = {}

    def add(
        self, category: str, hub: str, connection_id: str | None, text: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if category == "upstream":
            if detail is not None:
                self._last_calls[connection_id] = (hub, text)
                if len(self._last_calls) > self.length:  # bounded, as the entries are
                    del self._last_calls[next(iter(self._last_calls))]
            elif self._last_calls.pop(connection_id, None) == (hub, text):
                return  # the call's own entry says it, with its request and reply
        self._entries.append(TraceEntry(
            self._next_id, time.time(), category, hub, connection_id, mask_text(text), detail
        ))
        self._next_id += 1

    def add_call(
        self,
        hub: str,
        connection_id: str | None,
        text: str,
        *,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
        reply: tuple[int, Iterable[tuple[str, str]], bytes, str | None] | None,
        error: str | None,
        duration_ms: float,
        attempts: int,
    ) -> None:
        """One upstream call, masked: its request, and its reply (status, headers, body,
        content type) or why there is none."""
        request_body, request_cut = mask_body(body, content_type, BODY_LIMIT)
        detail: dict[str, Any] = {
            "request": {
                "method": method,
                "url": masked_url(url),
                "headers": mask_headers(headers, BODY_LIMIT),
                "body": request_body,
                "bodyBytes": len(body),
                "truncated": request_cut,
            },
            "durationMs": round(duration_ms, 1),
            "attempts": attempts,
        }
        if reply is not None:
            status, reply_headers, reply_body, reply_type = reply
            shown, cut = mask_body(reply_body, reply_type, BODY_LIMIT)
            detail["reply"] = {
                "status": status,
                "headers": mask_headers(reply_headers, BODY_LIMIT),
                "body": shown,
                "bodyBytes": len(reply_body),
                "truncated": cut,
            }
        if error is not None:
            detail["error"] = redact_tokens(error)
        self.add("upstream", hub, connection_id, text, detail)

    def since(self, after: int = 0) -> list[dict[str, Any]]:
        return [asdict(entry) for entry in self._entries if entry.id > after]
