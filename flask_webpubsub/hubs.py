"""A hub's event handlers: one registry, keyed by the CloudEvents type each handler takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from .config import validate_hub_name
from .core.wire import CONNECT, CONNECTED, DISCONNECTED, GROUP_JOINED, GROUP_LEFT, USER_PREFIX

F = TypeVar("F", bound=Callable[..., Any])

#: The registry key of the handler that takes every user event without a handler of its own.
ANY_USER_EVENT = USER_PREFIX.rstrip(".")


class Hub:
    """The event handlers of one hub, registered with decorators, like a Flask ``Blueprint``.

    The :class:`~flask_webpubsub.WebPubSub` extension is itself the hub named by
    ``WEBPUBSUB_HUB``; serve more hubs from the same event handler URL with
    :meth:`~flask_webpubsub.WebPubSub.register_hub`::

        notifications = Hub("notifications")

        @notifications.on_connect
        def connect(event): ...

        webpubsub.register_hub(notifications)

    Every decorator works with and without parentheses (``@hub.on_connect`` and
    ``@hub.on_connect()``). One event has one handler: registering a second one for the same
    event raises ``ValueError``.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = validate_hub_name(name) if name is not None else None
        self._handlers: dict[str, Callable[..., Any]] = {}
        self.negotiate_handler: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def handlers(self) -> Mapping[str, Callable[..., Any]]:
        """The registered handlers by the CloudEvents type they take
        (``azure.webpubsub.sys.connect``, ``azure.webpubsub.user.chat`` ...);
        ``azure.webpubsub.user`` is the catch-all user event handler. Read-only."""
        return self._handlers

    def handler(self, ce_type: str) -> Callable[..., Any] | None:
        """The handler of an event type: its own, else (for a user event) the catch-all."""
        handler = self._handlers.get(ce_type)
        if handler is None and ce_type.startswith(USER_PREFIX):
            return self._handlers.get(ANY_USER_EVENT)
        return handler

    def _register(self, key: str, what: str, f: Any) -> Any:
        if not callable(f):
            raise TypeError(f"{what} decorates a function, not {type(f).__name__}")
        existing = self._handlers.get(key)
        if existing is not None and existing is not f:
            raise ValueError(
                f"{what} already has a handler in {self!r}: {_name(existing)}; one event has one "
                "handler"
            )
        self._handlers[key] = f
        return f

    def _decorator(self, key: str, what: str, f: Any) -> Any:
        if f is None:  # used as @hub.on_x()
            return lambda g: self._register(key, what, g)
        return self._register(key, what, f)

    @overload
    def on_connect(self, f: F) -> F: ...
    @overload
    def on_connect(self, f: None = None) -> Callable[[F], F]: ...
    def on_connect(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``connect`` (a :class:`ConnectEvent`).

        It returns a :class:`ConnectResponse` or None to accept, and rejects with ``abort()``.
        """
        return self._decorator(CONNECT, "on_connect", f)  # type: ignore[no-any-return]

    @overload
    def on_connected(self, f: F) -> F: ...
    @overload
    def on_connected(self, f: None = None) -> Callable[[F], F]: ...
    def on_connected(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``connected`` (a :class:`ConnectedEvent`)."""
        return self._decorator(CONNECTED, "on_connected", f)  # type: ignore[no-any-return]

    @overload
    def on_disconnected(self, f: F) -> F: ...
    @overload
    def on_disconnected(self, f: None = None) -> Callable[[F], F]: ...
    def on_disconnected(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``disconnected`` (a :class:`DisconnectedEvent`)."""
        return self._decorator(DISCONNECTED, "on_disconnected", f)  # type: ignore[no-any-return]

    @overload
    def on_group_joined(self, f: F) -> F: ...
    @overload
    def on_group_joined(self, f: None = None) -> Callable[[F], F]: ...
    def on_group_joined(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``gp.joined`` (a :class:`GroupJoinedEvent`)."""
        return self._decorator(GROUP_JOINED, "on_group_joined", f)  # type: ignore[no-any-return]

    @overload
    def on_group_left(self, f: F) -> F: ...
    @overload
    def on_group_left(self, f: None = None) -> Callable[[F], F]: ...
    def on_group_left(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``gp.left`` (a :class:`GroupLeftEvent`)."""
        return self._decorator(GROUP_LEFT, "on_group_left", f)  # type: ignore[no-any-return]

    @overload
    def on_user_event(self, name: F) -> F: ...
    @overload
    def on_user_event(self, name: str | None = None) -> Callable[[F], F]: ...
    def on_user_event(self, name: str | F | None = None) -> Callable[[F], F] | F:
        """Register the handler of the user event ``name`` (a :class:`UserEvent`).

        Without a name, the handler gets every user event that has no handler of its own. Its
        return value is the reply sent to the client: ``str`` as text, ``bytes`` as binary, a
        dict, list, number or bool as JSON, a :class:`UserEventResponse`, or None for no reply.
        """
        if callable(name):
            return self._register(ANY_USER_EVENT, "on_user_event()", name)  # type: ignore[no-any-return]
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError("on_user_event() takes an event name or nothing")
        key = ANY_USER_EVENT if name is None else USER_PREFIX + name
        what = "on_user_event()" if name is None else f"on_user_event({name!r})"
        return lambda f: self._register(key, what, f)

    @overload
    def on_negotiate(self, f: F) -> F: ...
    @overload
    def on_negotiate(self, f: None = None) -> Callable[[F], F]: ...
    def on_negotiate(self, f: F | None = None) -> F | Callable[[F], F]:
        """Register the function that decides who a negotiating client is.

        It is called in the request context of the negotiate route (so it can read the session
        or ``abort(401)``) and returns :class:`NegotiateOptions`, a dict with the same keys, or
        None for an anonymous client.
        """

        def register(g: F) -> F:
            if not callable(g):
                raise TypeError(f"on_negotiate decorates a function, not {type(g).__name__}")
            if self.negotiate_handler is not None and self.negotiate_handler is not g:
                raise ValueError(
                    f"on_negotiate already has a handler in {self!r}: "
                    f"{_name(self.negotiate_handler)}"
                )
            self.negotiate_handler = g
            return g

        return register if f is None else register(f)


def _name(f: Callable[..., Any]) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"
