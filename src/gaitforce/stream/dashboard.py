"""The live page: a Starlette app serving ``static/index.html`` and a WebSocket ``/ws`` that sends the new
result rows of a :class:`~gaitforce.stream.runner.LiveFeed` every ``interval`` s, run by uvicorn in a
background thread on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from importlib import resources

from gaitforce.errors import GaitforceError


def _clean(row):
    return [None if (isinstance(v, float) and not math.isfinite(v)) else v for v in row]


def create_app(feed, *, interval: float = 0.04):
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    page = resources.files("gaitforce.stream").joinpath("static", "index.html").read_text()

    async def index(request):
        return HTMLResponse(page)

    async def meta(request):
        return JSONResponse({"names": feed.names, "units": feed.units})

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "meta", "names": feed.names, "units": feed.units}))
        try:
            while True:
                rows = feed.drain()
                if rows:
                    await websocket.send_text(json.dumps(
                        {"type": "rows", "t": [r[0] for r in rows], "rows": [_clean(r[1]) for r in rows]}))
                await asyncio.sleep(interval)
        except (WebSocketDisconnect, RuntimeError):
            return

    return Starlette(routes=[Route("/", index), Route("/meta", meta), WebSocketRoute("/ws", ws)])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """``Dashboard(feed, port=...).start()`` serves the page at :attr:`url` until :meth:`stop`."""

    def __init__(self, feed, *, port: int = 0, interval: float = 0.04):
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(create_app(feed, interval=interval), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="gaitforce-dashboard", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, *, timeout: float = 10.0) -> "Dashboard":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise GaitforceError(f"the dashboard could not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)
