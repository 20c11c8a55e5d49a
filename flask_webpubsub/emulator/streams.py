"""Group streams (client spec 3.6, the JSON subprotocol's "Start streaming messages"): a
publisher's ordered fragments to a group, acknowledged by stream sequence id, kept alive by data
or keep-alives, and ended by the publisher, the service (idle, permission gone) or the
connection's end.

A :class:`Stream` is one stream's state on its publisher's connection; what the requests do with
it is :mod:`.dispatch`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .messages import DataMessage, StreamClosed, StreamInfo
from .payload import Payload

#: Seconds a stream may go without data or keep-alive, unless its start says otherwise.
DEFAULT_IDLE_TIMEOUT = 300.0
#: How many streams a connection may have open at once. The service documents no limit; without
#: one, a single client could hold any number of timers and stream states.
MAX_STREAMS = 100

#: Errors that end a stream (the publisher gets them in its streamClosed, the subscribers in the
#: terminal message).
IDLE_TIMEOUT = "IdleTimeout"
FORBIDDEN = "Forbidden"
CANCELLED = "Cancelled"
USER_ERROR = "UserError"

#: Delivers a stream's message to its group (its members but the publisher, with noEcho).
Publish = Callable[[DataMessage], None]
#: Tells the publisher that its stream is over, and forgets the stream.
Close = Callable[["Stream", StreamClosed], None]


class Stream:
    """An open stream: its group, the next fragment it expects, and its idle timer."""

    def __init__(
        self,
        stream_id: str,
        group: str,
        from_user_id: str | None,
        idle_timeout: float,
        publish: Publish,
        close: Close,
    ) -> None:
        self.stream_id = stream_id
        self.group = group
        self.from_user_id = from_user_id
        self.idle_timeout = idle_timeout
        #: The stream sequence id of the next fragment it takes.
        self.expected = 1
        self._publish = publish
        self._close = close
        self._timer: asyncio.TimerHandle | None = None
        self.touch()

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id!r} to {self.group!r}, expecting {self.expected}>"

    def touch(self) -> None:
        """Data or a keep-alive came: the idle timeout starts again."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.idle_timeout, self._idle)

    def publish(self, payload: Payload) -> None:
        """Send the next fragment to the group."""
        info = StreamInfo(self.stream_id, self.expected)
        self.expected += 1
        self._publish(self._message(payload, info))
        self.touch()

    def end(
        self,
        error: str | None = None,
        reason: str = "",
        *,
        user_error_code: str | None = None,
        publisher_error: str | None = None,
    ) -> None:
        """Send the group the terminal message (with the error that ends the stream, if any),
        stop the timer, and tell the publisher: ``publisher_error`` when the publisher is told
        another error than the group, else the same one, but for its own error (``UserError``),
        which is a normal end to it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        info = StreamInfo(self.stream_id, self.expected, end=True, error=error,
                          reason=reason if error else None, user_error_code=user_error_code)
        self._publish(self._message(Payload("text"), info))
        told = publisher_error or (None if error == USER_ERROR else error)
        self._close(self, StreamClosed(self.stream_id, told, reason if told else ""))

    def _message(self, payload: Payload, info: StreamInfo) -> DataMessage:
        return DataMessage(payload, group=self.group, from_user_id=self.from_user_id,
                           stream=info)

    def _idle(self) -> None:
        self._timer = None
        self.end(IDLE_TIMEOUT, f"No stream data or keep-alive for {self.idle_timeout:g} s.")
