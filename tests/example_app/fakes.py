"""A stand-in for the service client, and a driver that connects chat users through the
testing helpers, so the chat's handlers run end to end without a service or an emulator."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from flask_webpubsub.testing import TestConnection, WebPubSubTestClient


class ServiceSwitch:
    """The service client the app gets: it forwards every call to :attr:`target`, which a test
    may swap for a service that fails."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class FakeService:
    """Does what the service would do with the service client's calls the chat makes: keeps
    group members, and what each connection received."""

    def __init__(self) -> None:
        self.groups: dict[str, set[str]] = defaultdict(set)
        self.received: dict[str, list[Any]] = defaultdict(list)

    def add_connection_to_group(self, group: str, connection_id: str, **_: Any) -> None:
        self.groups[group].add(connection_id)

    def remove_connection_from_group(self, group: str, connection_id: str, **_: Any) -> None:
        self.groups[group].discard(connection_id)

    def send_to_group(
        self,
        group: str,
        message: Any,
        *,
        excluded: list[str] | None = None,
        content_type: str | None = None,
        **_: Any,
    ) -> None:
        assert content_type == "application/json"
        for connection_id in sorted(self.groups[group] - set(excluded or ())):
            self.received[connection_id].append(message)

    def send_to_connection(
        self, connection_id: str, message: Any, *, content_type: str | None = None, **_: Any
    ) -> None:
        assert content_type == "application/json"
        self.received[connection_id].append(message)

    def drop(self, connection_id: str) -> None:
        """The connection is gone: the service takes it out of every group."""
        for members in self.groups.values():
            members.discard(connection_id)

    def inbox(self, connection: TestConnection, kind: str | None = None) -> list[Any]:
        """What a connection received from the app, oldest first, optionally of one kind."""
        return [m for m in self.received[connection.connection_id]
                if kind is None or m.get("kind") == kind]


class ChatUsers:
    """Connects users as the page does, and applies the app's replies as the service would."""

    def __init__(self, client: WebPubSubTestClient, service: FakeService) -> None:
        self.client = client
        self.service = service

    def connect(self, name: str | None, room: str | None = None) -> TestConnection:
        """``connect`` (with the page's ``room`` query) and, when accepted, ``connected``."""
        connection = self.client.connection(user_id=name)
        query: Mapping[str, list[str]] = {"room": [room]} if room is not None else {}
        if connection.connect(query=query).accepted:
            for group in connection.groups:
                self.service.groups[group].add(connection.connection_id)
            assert connection.connected().status == 200
        return connection

    def disconnect(self, connection: TestConnection) -> None:
        self.service.drop(connection.connection_id)
        assert connection.disconnected("closed by the client").status == 200
