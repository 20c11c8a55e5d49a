"""Event handler settings: which events of which hub go to which upstream URL.

The same model as a hub's settings in the Azure portal: an ordered list of event handlers, each
a URL template (``{hub}`` and ``{event}`` are filled in per event) with the user events it takes
(``*``, or a comma-separated list of names) and the system events it takes. The first handler
that takes an event gets it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from flask_webpubsub.core.wire import SYSTEM_EVENTS

#: The key of the settings that apply to every hub without settings of its own.
ANY_HUB = "*"


@dataclass(frozen=True)
class EventHandler:
    """One upstream event handler of a hub."""

    #: ``http(s)://host[:port]/path``, where ``{hub}`` and ``{event}`` are filled in.
    url_template: str
    #: ``*`` for every user event, else the names it takes; empty for none.
    user_events: frozenset[str] = frozenset({"*"})
    system_events: frozenset[str] = SYSTEM_EVENTS

    def __post_init__(self) -> None:
        parts = urlsplit(self.url_template)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an upstream URL must be http(s)://host/path, not {self.redacted!r}")
        if "{event}" in parts.netloc or "{hub}" in parts.netloc:
            raise ValueError("{event} and {hub} are not allowed in the upstream URL's host")
        unknown = set(self.system_events) - SYSTEM_EVENTS
        if unknown:
            raise ValueError(
                f"unknown system events {sorted(unknown)}: use {', '.join(sorted(SYSTEM_EVENTS))}"
            )

    @classmethod
    def create(
        cls,
        url_template: str,
        *,
        user_events: str | Iterable[str] = "*",
        system_events: Iterable[str] = SYSTEM_EVENTS,
    ) -> EventHandler:
        """Build from the portal's notation: ``user_events="*"`` or ``"chat, ping"``."""
        names = user_events.split(",") if isinstance(user_events, str) else user_events
        return cls(
            url_template,
            frozenset(n.strip() for n in names if n.strip()),
            frozenset(e.strip().lower() for e in system_events if e.strip()),
        )

    def takes(self, event_name: str, system: bool) -> bool:
        """Whether this handler gets the event."""
        if system:
            return event_name in self.system_events
        return "*" in self.user_events or event_name in self.user_events

    def url(self, hub: str, event_name: str) -> str:
        """The URL for one event (``validate`` for the abuse-protection check)."""
        return self.url_template.replace("{hub}", quote(hub, safe="")).replace(
            "{event}", quote(event_name, safe="")
        )

    @property
    def redacted(self) -> str:
        """The template without its query string, which may hold a secret (``?code=...``)."""
        return redact_url(self.url_template)


def redact_url(url: str) -> str:
    """A URL for a log line: no query string, no user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
