"""The dashboard web app: FastAPI, static assets, and WebSocket frames at a bounded rate.

A *source* (a :class:`~dvms.dashboard.replay.Replay` or a
:class:`~dvms.dashboard.feed.LiveSource`) owns the :class:`InfraState`. One ticker
task advances the source and sends each connected client its next frame, at most
``rate_hz`` times a second (≤ 5): a full frame on connect or after a seek, deltas
otherwise. Clients send commands as JSON (``{"cmd": "play"|"pause"|"seek"|"speed"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dvms.dashboard.state import ClientCursor, InfraState
from dvms.errors import InputError

__all__ = ["MAX_RATE_HZ", "Source", "bind_socket", "create_app", "is_loopback", "serve"]

MAX_RATE_HZ = 5.0
STATIC = Path(str(resources.files("dvms.dashboard") / "static"))


class Source(Protocol):
    """What the app drives: a replay or a live run."""

    state: InfraState

    def advance(self, wall: float) -> None: ...

    def control(self, command: Mapping[str, Any]) -> None: ...

    def status(self) -> dict[str, Any]: ...


class _Client:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.cursor = ClientCursor()
        self.lock = asyncio.Lock()


def create_app(
    source: Source,
    *,
    rate_hz: float = MAX_RATE_HZ,
    clock: Callable[[], float] = time.monotonic,
    title: str = "dvms dashboard",
) -> FastAPI:
    """The app serving ``source``; frames at most ``rate_hz`` (0 < rate ≤ 5) per second."""
    if not 0 < rate_hz <= MAX_RATE_HZ:
        raise ValueError(f"rate_hz {rate_hz!r}: must be in (0, {MAX_RATE_HZ:g}]")
    clients: set[_Client] = set()
    busy = asyncio.Lock()  # one user of the source at a time; slow seeks run on a thread

    def render(client: _Client) -> str:
        frame = source.state.frame(client.cursor, source.status())
        return json.dumps(frame, separators=(",", ":"))

    async def send(client: _Client, text: str) -> None:
        async with client.lock:
            await client.ws.send_text(text)

    async def send_frame(client: _Client) -> None:
        async with busy:
            text = render(client)
        await send(client, text)

    async def ticker() -> None:
        period = 1.0 / rate_hz
        while True:
            started = time.monotonic()
            async with busy:
                source.advance(clock())
                frames = [(client, render(client)) for client in list(clients)]
            for client, text in frames:
                try:
                    await asyncio.wait_for(send(client, text), timeout=5.0)
                except Exception:  # a gone or stuck client is dropped, never the app
                    clients.discard(client)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    async def apply(command: Mapping[str, Any]) -> None:
        async with busy:
            await asyncio.to_thread(source.control, command)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        state = source.state
        return {**source.status(), "counters": dict(state.counters),
                "hosts": len(state.hosts), "vms": len(state.vm_host),
                "coords": len(state.coords), "partitions": len(state.partitions)}

    @app.post("/api/control")
    async def control(command: dict[str, Any]) -> JSONResponse:
        try:
            await apply(command)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(source.status())

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = _Client(websocket)
        await send_frame(client)
        clients.add(client)
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    command = json.loads(text)
                    if not isinstance(command, dict):
                        raise ValueError("a command is a JSON object")
                    await apply(command)
                except ValueError as exc:
                    await websocket.send_text(json.dumps({"kind": "error", "message": str(exc)}))
                    continue
                await send_frame(client)
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(client)

    return app


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise InputError(f"--host {host!r}: cannot resolve this name") from None
    return all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


def bind_socket(host: str, port: int, *, explicit: bool) -> socket.socket:
    """A listening socket on host:port; non-loopback only when ``explicit`` (--host given)."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: must be in 0..65535")
    if not is_loopback(host) and not explicit:
        raise InputError(
            f"refusing to bind the dashboard to non-loopback address {host!r}: "
            f"pass --host {host} explicitly to expose it"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Run the app on a bound socket until interrupted."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def announce_and_serve(app: FastAPI, sock: socket.socket, address: str, what: str,
                       prog: str) -> None:
    """Say where the dashboard listens (warning when not on loopback), then ``serve``."""
    import sys

    bound, port = sock.getsockname()[:2]
    shown = f"[{bound}]" if ":" in bound else bound
    if not is_loopback(address):
        print(f"{prog}: warning: listening on non-loopback address {address} because "
              "--host was given: anyone who can reach this machine can see the dashboard",
              file=sys.stderr)
    print(f"{prog}: {what} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    serve(app, sock)
