"""The prediction log: a sample of requests and their answers, in a SQLite file.

``PredictionLog`` is a data plane observer (``podium.core.observers``). ``observe`` runs on
the event loop, so it only samples and puts the observation on a bounded queue (a full
queue drops it and counts it in ``dropped``); a writer thread describes the inputs and
outputs and writes them in batches to one table, in WAL mode so that readers (``podium
log``, the management API's ``/models/{m}/predictions``) never wait on it::

    predictions(id, time, model, version, protocol, status, latency, input, output)

Past ``max_bytes`` the file is renamed to ``PATH.1`` (replacing an older one) and a new one
is started. A disk error turns the log off with one error line; the server keeps serving.
"""

from __future__ import annotations

import base64
import collections
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

log = logging.getLogger("podium.predictions")

SMALL_BYTES = 4096
"""Raw inputs up to this size are kept (base64); larger ones are noted by their length."""
SMALL_TENSOR = 64
"""V2 tensors with up to this many elements keep their data."""
LARGE_TEXT = 65536
"""Inputs and outputs are kept as text up to this many bytes."""
INTERVAL = 0.05
"""Seconds the writer sleeps when nothing is pending: it wakes 20 times a second at most,
not once per request, so the event loop keeps the GIL (a wake-up per request cost the
front end ~14 µs per request on NSMC; bench/RESULTS.md)."""

SCHEMA = """CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY, time REAL, model TEXT, version TEXT, protocol TEXT,
    status INTEGER, latency REAL, input TEXT, output TEXT)"""
COLUMNS = ("id", "time", "model", "version", "protocol", "status", "latency", "input", "output")


class Served(Protocol):
    """What the log needs of a served version (``podium.core.registry.ModelVersion``)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...


class Request(Protocol):
    """An ``InferenceRequest``, as far as the log reads it."""

    @property
    def codec(self) -> str: ...
    @property
    def payload(self) -> Any: ...


class Observed(Protocol):
    """A ``podium.core.observers.Observation``; the core layer is above this one, so the
    log names only what it reads."""

    @property
    def served(self) -> Served: ...
    @property
    def status(self) -> int: ...
    @property
    def latency(self) -> float | None: ...
    @property
    def request(self) -> Request | None: ...
    @property
    def body(self) -> bytes | None: ...


class Entry(NamedTuple):
    """What ``observe`` queues: cheap to build; the writer thread describes it."""

    time: float
    model: str
    version: str
    status: int
    latency: float | None
    request: Request | None
    body: bytes | None


class PredictionLog:
    """Records a sample of requests to a SQLite file, off the event loop::

    predictions = PredictionLog(Path("predictions.sqlite"), sampling=0.1)
    dataplane.observers.append(predictions)
    predictions.start()  # ... and predictions.close() at shutdown
    """

    def __init__(
        self,
        path: Path,
        sampling: float = 1.0,
        max_bytes: int = 256 * 1024**2,
        capacity: int = 10_000,
    ) -> None:
        self.path = path
        self.sampling = sampling
        self.max_bytes = max_bytes
        self.capacity = capacity
        self.pending: collections.deque[Entry] = collections.deque()
        """Entries waiting for the writer: ``append`` and ``popleft`` are atomic, so the
        event loop adds to it without a lock or a wake-up."""
        self.dropped = 0
        """Entries dropped because the queue was full."""
        self.disabled = False
        """A disk error turned the log off."""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def observe(self, observation: Observed) -> None:
        """Sample and queue one request's outcome; never blocks."""
        if self.disabled or (self.sampling < 1.0 and random.random() >= self.sampling):
            return
        served = observation.served
        entry = Entry(
            time.time(),
            served.name,
            served.version,
            observation.status,
            observation.latency,
            observation.request,
            observation.body,
        )
        if len(self.pending) >= self.capacity:
            self.dropped += 1
        else:
            self.pending.append(entry)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._write, name="podium-prediction-log")
        self._thread.daemon = True
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)  # a writer stuck on the disk is a daemon thread: left behind

    def _write(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            connection = _connect(self.path)
            while True:
                stopping = self._stop.is_set()  # what is pending now is still written
                pending = self.pending
                if pending:
                    rows = [_row(pending.popleft()) for _ in range(len(pending))]
                    with connection:
                        connection.executemany(
                            "INSERT INTO predictions (time, model, version, protocol, status,"
                            " latency, input, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            rows,
                        )
                if stopping:
                    return
                if _size(self.path) > self.max_bytes:
                    connection.close()
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                    connection = _connect(self.path)
                self._stop.wait(INTERVAL)
        except (sqlite3.Error, OSError) as error:
            self.disabled = True
            log.error("prediction log %s is off after a disk error: %s", self.path, error)
            self.pending.clear()
        finally:
            if connection is not None:
                connection.close()


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL cannot corrupt the file; a power cut may lose the last
    # commits, which a sampled log can afford (FULL syncs the disk on every commit).
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(SCHEMA)
    connection.execute("CREATE INDEX IF NOT EXISTS predictions_model ON predictions (model, id)")
    return connection


def _size(path: Path) -> int:
    """The log's bytes on disk, its write-ahead log included."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _row(entry: Entry) -> tuple[Any, ...]:
    request = entry.request
    codec = request.codec if request is not None else None
    described = _input(request.codec, request.payload) if request is not None else None
    output = _text(entry.body) if entry.body is not None else None
    return (
        entry.time,
        entry.model,
        entry.version,
        codec,
        entry.status,
        entry.latency,
        described,
        output,
    )


def _input(codec: str, payload: Any) -> str:
    """A request's input as JSON text, by protocol."""
    if codec == "torchserve" and isinstance(payload, tuple) and payload:
        return _text(payload[0])
    if codec.startswith("v2"):
        return _dumps([_tensor(tensor) for tensor in getattr(payload, "inputs", ())])
    if isinstance(payload, bytes):
        return _dumps(_raw(payload))
    return _dumps(payload)


def _tensor(tensor: Any) -> dict[str, Any]:
    """A V2 input tensor: name, datatype, shape, and its data when small."""
    described = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
    if tensor.data.size <= SMALL_TENSOR:
        described["data"] = tensor.data.ravel().tolist()
    return described


def _raw(data: bytes) -> dict[str, Any]:
    if len(data) <= SMALL_BYTES:
        return {"bytes": len(data), "base64": base64.b64encode(data).decode()}
    return {"bytes": len(data)}


def _text(body: bytes) -> str:
    """A body as text when it is text (JSON is), else a note of its length."""
    if len(body) <= LARGE_TEXT:
        try:
            return body.decode()
        except UnicodeDecodeError:
            pass
    return _dumps({"bytes": len(body)})


def _dumps(value: Any) -> str:
    def fallback(other: Any) -> Any:
        if isinstance(other, bytes):
            return other.decode("utf-8", "replace")
        return repr(other)

    text = orjson.dumps(value, default=fallback, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text if len(text) <= LARGE_TEXT else _dumps({"characters": len(text)})


def read_predictions(
    path: Path, model: str, limit: int = 10, since: float | None = None
) -> list[dict[str, Any]]:
    """The last ``limit`` entries of ``model`` (since a Unix time), oldest first; read-only,
    so a running server's writer is never held up. No file yet: no entries."""
    if not path.exists():
        return []
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
        if connection.execute(found).fetchone() is None:  # created, not yet written
            return []
        rows = connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM predictions WHERE model = ? AND time >= ?"
            " ORDER BY id DESC LIMIT ?",
            (model, since if since is not None else 0.0, limit),
        ).fetchall()
    finally:
        connection.close()
    return [dict(zip(COLUMNS, row, strict=True)) for row in reversed(rows)]
