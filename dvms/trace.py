"""The trace: one JSON object per line, ``events.jsonl`` or ``events.jsonl.gz``.

Format ``dvms.events/1`` (documented in docs/trace.md):

- line 1 is a header ``{"t": 0.0, "type": "header", "node": "world", "schema":
  "dvms.events/1", ...}`` with run metadata (seed, hosts, sites, ...);
- every other line is an event ``{"t": seconds, "type": str, "node": str, ...fields}``,
  in the order the run produced them (non-decreasing ``t``).

Bytes are deterministic: compact JSON (``,`` and ``:`` separators, no spaces), keys in the
order the emitter built the event (``t``, ``type``, ``node``, then the fields), non-ASCII
kept as UTF-8, NaN/Infinity refused; gzip with ``mtime=0`` and no file name. Writing is
buffered (lines joined and flushed every ``flush_every`` events).
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from dvms.errors import InputError

__all__ = ["SCHEMA", "TraceWriter", "read_events", "read_header"]

SCHEMA = "dvms.events/1"
"""The event schema version written in the header."""

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without its per-call set-up: the C encoder made once (the same
    text; no circular-reference check: an event refers to itself only by a bug, and then
    recursion fails). Where the C encoder is missing, ``_ENCODER.encode`` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    strings = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or strings is None:
        return _ENCODER.encode
    chunks = make(None, _ENCODER.default, strings, None, ":", ",", False, False, False)

    def encode(obj: Any) -> str:
        return "".join(chunks(obj, 0))

    return encode


_encode = _encoder()


class TraceWriter:
    """Writes events to ``path``; gzip when the name ends in ``.gz``.

    Usable as the runtime's ``trace`` callable (``writer(event)``) and as a context manager.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        header: Mapping[str, Any] | None = None,
        compresslevel: int = 6,
        flush_every: int = 4096,
    ) -> None:
        self.path = Path(path)
        self.events = 0
        """Events written so far (the header not counted)."""
        self._flush_every = flush_every
        self._lines: list[str] = []
        raw = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._raw = raw
        self._stream: IO[bytes] | gzip.GzipFile
        if self.path.name.endswith(".gz"):
            self._stream = gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
            )
        else:
            self._stream = raw
        self._closed = False
        head: dict[str, Any] = {"t": 0.0, "type": "header", "node": "world", "schema": SCHEMA}
        head.update(header or {})
        self._lines.append(_encode(head))

    def __call__(self, event: Mapping[str, Any]) -> None:
        self.write(event)

    def write(self, event: Mapping[str, Any]) -> None:
        """Append one event (a mapping with ``t``, ``type``, ``node`` and fields)."""
        lines = self._lines
        lines.append(_encode(event))
        self.events += 1
        if len(lines) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events so that a reader sees them now (a gzip stream is
        sync-flushed: a live view can inflate the file while it is written)."""
        if self._lines:
            self._lines.append("")
            self._stream.write("\n".join(self._lines).encode("utf-8"))
            self._lines = []
            self._stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"trace {str(path)!r} does not exist or is not a file")
    try:
        with _open_text(path) as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{path}: line {number} is not JSON") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{path}: line {number} is not a JSON object")
                yield number, obj
    except EOFError:
        raise InputError(f"{path}: truncated trace (gzip stream ends early)") from None
    except (OSError, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: corrupt trace ({type(exc).__name__}: {exc})") from None


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The header of a trace, or None when its first line is an ordinary event."""
    for _, obj in _objects(path):
        return obj if obj.get("type") == "header" else None
    return None


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a trace in order, header left out; ``InputError`` if corrupt."""
    for number, obj in _objects(path):
        if obj.get("type") == "header":
            continue
        t = obj.get("t")
        if isinstance(t, bool) or not isinstance(t, int | float) or "type" not in obj:
            raise InputError(f"{path}: line {number} lacks a numeric t or a type")
        yield obj
