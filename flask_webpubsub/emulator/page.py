"""The read-only live page at ``/``: hubs, connections and groups, and the live trace, which the
page's script polls from ``/_emulator/state``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from flask_webpubsub.core.jsoncodec import encode_json
from flask_webpubsub.core.wire import JSON_CONTENT_TYPE

from .trace import LiveTrace

STATIC = Path(__file__).parent / "static"


def add_routes(
    app: web.Application, snapshot: Callable[[], dict[str, Any]], trace: LiveTrace
) -> None:
    """``snapshot()`` is what the page shows besides the trace."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def overview(request: web.Request) -> web.StreamResponse:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            after = 0
        body = snapshot()
        body["trace"] = trace.since(after)
        return web.Response(
            body=encode_json(body),
            headers={"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"},
        )

    app.router.add_get("/", page)
    app.router.add_get("/_emulator/state", overview)
    app.router.add_static("/_emulator/static", STATIC)
