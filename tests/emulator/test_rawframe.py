"""The socket writer's fast path: whole frames written as raw bytes, checked byte by byte, parsed
back by the websockets library, and received by a real client in order with the frames that
took the queued path through aiohttp."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from flask_webpubsub.emulator.rawframe import OutgoingFrame
from flask_webpubsub.emulator.rawframe import encode as websocket_frame
from flask_webpubsub.emulator.socket_writer import SocketWriter

#: Each length form's edges (RFC 6455 5.2): 7 bits up to 125, 16 bits up to 65535, then 64 bits.
SIZES = [0, 125, 126, 65535, 65536]


def _text(size: int) -> str:
    return "é" * (size // 2) + "x" * (size % 2)  # ``size`` bytes of UTF-8


def _binary(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)


@pytest.mark.parametrize(
    ("data", "header"),
    [
        ("", b"\x81\x00"),
        ("x" * 125, b"\x81\x7d"),
        ("x" * 126, b"\x81\x7e\x00\x7e"),
        (b"\x00" * 65535, b"\x82\x7e\xff\xff"),
        (b"\x00" * 65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_frames_use_the_shortest_length_form(data: str | bytes, header: bytes) -> None:
    # Clients may refuse a longer form than needed (RFC 6455 5.2: "the minimal number of bytes
    # MUST be used"); the clients in these tests accept it, so the bytes are checked here.
    frame = websocket_frame(data)
    assert frame[: len(header)] == header
    assert frame[len(header):] == (data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_the_websockets_library_parses_each_frame_whole(size: int, kind: str) -> None:
    data: str | bytes = _text(size) if kind == "text" else _binary(size)
    reader = StreamReader()
    reader.feed_data(websocket_frame(data) + websocket_frame(b"next"))
    frame = _parse(reader)
    assert frame.fin
    assert frame.opcode is (Opcode.TEXT if kind == "text" else Opcode.BINARY)
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)
    assert frame.data == (data.encode() if isinstance(data, str) else data)
    # It took its own bytes and no more: the next frame follows whole.
    assert _parse(reader).data == b"next"


def _parse(reader: StreamReader) -> Frame:
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    with pytest.raises(StopIteration) as parsed:
        next(parser)
    frame: Frame = parsed.value.value
    return frame


def test_the_frame_bytes_are_built_once() -> None:
    frame = OutgoingFrame("shared")
    assert frame.raw is frame.raw


async def _send_through_a_real_socket(
    frames: list[str | bytes],
) -> tuple[list[str], list[str | bytes]]:
    """Serve one WebSocket whose writer sends ``frames`` in one go, to a websockets client:
    the path each frame took, and what the client received."""
    paths: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        writer = SocketWriter(ws, request.transport, asyncio.get_running_loop().create_task)
        for data in frames:
            paths.append("raw" if writer.send(OutgoingFrame(data)) else "queued")
        await writer.close(1000, "done")
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    received: list[str | bytes] = []

    async def receive_all() -> None:
        async with connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None) as ws:
            while True:
                received.append(await ws.recv())

    try:
        with pytest.raises(ConnectionClosedOK):
            await receive_all()
    finally:
        await runner.cleanup()
    return paths, received


def test_raw_and_queued_frames_reach_a_real_client_whole_and_in_order() -> None:
    # The first frames go raw (the transport is idle); a frame bigger than the kernel's socket
    # buffers leaves bytes in the transport, so the ones after it wait in the queue.
    small = [_text(size) for size in SIZES] + [_binary(size) for size in SIZES]
    frames: list[str | bytes] = [*small, b"\x01" * (32 * 1024 * 1024), *small]
    paths, received = asyncio.run(_send_through_a_real_socket(frames))
    assert paths[0] == "raw"
    assert paths[-len(small):] == ["queued"] * len(small)
    assert len(received) == len(frames)
    for index, (got, sent) in enumerate(zip(received, frames, strict=True)):
        assert type(got) is type(sent), index
        assert got == sent, index
