"""A tiny REST server on loopback serving recorded Grid'5000 API payloads (no mocks).

``RecordedApi(payloads)`` answers ``GET /3.0<path>`` with ``payloads[path]`` (query
strings ignored), 404 for unknown paths, and the status set in ``faults[path]`` (a path
prefix) instead when there is one; a path under a prefix of ``garbled`` gets a 200 whose
body is not JSON. It logs the paths requested.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "g5k"


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class RecordedApi:
    def __init__(self, payloads: dict[str, Any]) -> None:
        self.payloads = payloads
        self.faults: dict[str, int] = {}
        self.garbled: set[str] = set()
        self.log: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                path = path[len("/3.0"):] if path.startswith("/3.0") else path
                path = "/" + path.strip("/") if path.strip("/") else "/"
                api.log.append(path)
                status = next((s for p, s in api.faults.items() if path.startswith(p)), 0)
                body: Any = {"message": "fault"} if status else api.payloads.get(path)
                if body is None:
                    status, body = 404, {"message": f"{path} not found"}
                data = json.dumps(body).encode()
                if any(path.startswith(p) for p in api.garbled):
                    data = b"<html>Proxy error</html>"
                self.send_response(status or 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/3.0/"

    def __enter__(self) -> RecordedApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def recorded_platform(workdir: Path, **reservation: Any) -> Iterator[tuple[RecordedApi, Any, Any]]:
    """Serve ``api.json``, configure execo for it, yield (api, experiment, platform)."""
    from deploy.g5k import session
    from deploy.g5k.config import parse_experiment
    from deploy.g5k.platform import load_platform

    with RecordedApi(recorded("api.json")) as api:
        exp = parse_experiment({
            "name": "rec",
            "platform": {"api_uri": api.uri, "poll_s": 1, "api_timeout_s": 5},
            "reservation": reservation or {"resources": ["grid5000:1"]},
        })
        session.configure(exp, workdir)
        yield api, exp, load_platform()


@contextmanager
def machine_tz(name: str) -> Iterator[None]:
    """Run the block with the process's time zone set to ``name`` (``TZ`` + ``tzset``)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
