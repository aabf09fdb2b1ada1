"""Benchmark podium on the NSMC sentiment example against the model itself and plain FastAPI.

    python bench/nsmc.py [--duration 10] [--out bench/out] [--profile]

One run measures, in order:

1. **In-process ceiling.** The example is trained and archived
   (``podium.cli.example.build``), the archive is unpacked and its handler loaded the way a
   worker does (``podium.backends.local.worker.load``), and ``handler.handle`` is timed on
   single requests and on batches of 32, pinned to core 1 with one BLAS/OpenMP thread.
   No HTTP, no JSON, no IPC: the most a server could reach.
2. **podium**, ``podium serve`` pinned to core 1 (front end and its worker process share
   it), once per batching policy: ``adaptive`` (the default) and ``fixed`` (the archive's
   5 ms ``max_batch_delay``, batch 32).
3. **plain FastAPI** (``bench/fastapi_app.py``): a pydantic body, a sync endpoint, one
   ``predict_proba`` per request, under ``uvicorn --loop uvloop --http httptools`` on core 1.

Each server is loaded by ``wrk`` pinned to core 0 (one thread; 1 and 64 connections;
``bench/wrk_post.lua`` POSTs ``{"text": "정말 재밌게 잘봤습니다!"}``), after a short unmeasured
warm-up. So the client never competes with the server for a core, and the server gets
exactly one core, whatever it runs. Server CPU time per request is read from ``/proc``.

The markdown table, the ratios against the targets (podium ≥ 5x FastAPI at 64 connections,
p50 at 1 connection ≤ 0.3 ms above the in-process call) and the raw JSON are printed and
written to ``--out``; batch-size figures are added if the server exposes them.

``--profile`` then profiles podium (adaptive) under more runs (see ``bench/profiling.py``):
py-spy on the front end and on its worker (top functions by self time, grouped into HTTP,
JSON, batcher, IPC, handler...), ``perf record`` on the server core at 64 and 1
connections (native: interpreter, GC, kernel, libraries) and ``perf stat`` for system
calls per request. py-spy is needed only then (``pip install py-spy``); the perf views
are skipped, with the reason, where perf cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import profiling

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
LUA = BENCH / "wrk_post.lua"
MODEL = "nsmc_sentiment"
ROUTE = f"/predictions/{MODEL}"
REQUEST = {"text": "정말 재밌게 잘봤습니다!"}
SERVER_CORE, CLIENT_CORE = 1, 0
CONCURRENCIES = (1, 64)
BATCH = 32
TARGET_SPEEDUP = 5.0
TARGET_OVERHEAD_MS = 0.3
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
BATCH_INFO_PATHS = ("/metrics", f"/models/{MODEL}", "/models")
IDLE = 0.0005  # seconds before each call of the "after idle" in-process timing
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
# Straight to 127.0.0.1, whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ----------------------------------------------------------------------------- results


@dataclass
class Load:
    """One wrk run against one server."""

    server: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu_us_per_request: dict[str, float]
    """Server CPU time (user + system) per request, by process role."""
    wrk: dict[str, Any] = field(repr=False)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


@dataclass
class Server:
    """A running server process and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        """The server's child processes (podium's workers), by ``pgrep -P``."""
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def roles(self) -> dict[str, list[int]]:
        children = self.children()
        return {"front end": [self.pid], "worker": children} if children else {"server": [self.pid]}


# ----------------------------------------------------------------------------- model


def build_model(work: Path) -> tuple[Path, Path]:
    """Train and archive the example; return the archive and the bare model.joblib."""
    from podium.cli.example import build

    store, build_dir = work / "store", work / "build"
    archive = build(store, build_dir, report=lambda line: print(f"  train: {line}"))
    return archive, build_dir / "model.joblib"


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """Run the calling thread on one core with one BLAS/OpenMP thread."""
    from threadpoolctl import threadpool_limits

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        os.sched_setaffinity(0, before)


def time_calls(
    call: Callable[[], object], seconds: float, warmup: int = 200, idle: float = 0.0
) -> list[float]:
    """Call repeatedly for about ``seconds``; return each call's duration in ms.

    With ``idle``, sleep that long before each call, as a worker waits between requests
    at one connection: caches cool, and the call gets slower than in a tight loop.
    """
    for _ in range(warmup):
        call()
    durations: list[float] = []
    clock = time.perf_counter
    end = clock() + seconds
    while clock() < end:
        if idle:
            time.sleep(idle)
        start = clock()
        call()
        durations.append((clock() - start) * 1000)
    return durations


def in_process_baseline(archive: Path, work: Path, seconds: float) -> dict[str, Any]:
    """Time the handler without a server: one request per call, and 32 per call."""
    from podium.archive import unpack
    from podium.backends.local import wire
    from podium.backends.local.worker import load

    model_dir = work / "unpacked"
    unpack(archive, model_dir)
    runner = load(wire.Load(str(model_dir), 0, False))
    handler, context = runner.handler, runner.context
    batch = [dict(REQUEST) for _ in range(BATCH)]
    with pinned(SERVER_CORE):
        single = time_calls(lambda: handler.handle([dict(REQUEST)], context), seconds)
        batched = time_calls(lambda: handler.handle(batch, context), seconds, warmup=20)
        encoded = time_calls(lambda: runner.run([dict(REQUEST)]), seconds)
        cooled = time_calls(lambda: handler.handle([dict(REQUEST)], context), seconds, idle=IDLE)
    single_ms = statistics.fmean(single)
    batch_ms = statistics.fmean(batched) / BATCH
    return {
        "single_ms_mean": single_ms,
        "single_ms_p50": statistics.median(single),
        "batch32_ms_per_request": batch_ms,
        "worker_run_single_ms_mean": statistics.fmean(encoded),
        "single_after_idle_ms_p50": statistics.median(cooled),
        "single_rps_ceiling": 1000 / single_ms,
        "batch32_rps_ceiling": 1000 / batch_ms,
        "calls": {
            "single": len(single),
            "batch32": len(batched),
            "run": len(encoded),
            "after_idle": len(cooled),
        },
    }


# ----------------------------------------------------------------------------- servers


def run_baseline(
    script: str, archive: Path, work: Path, seconds: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script --baseline-only ARCHIVE`` in a fresh process on the server core and
    return the JSON line it prints last (the benchmarks' in-process timings)."""
    command = [
        "taskset", "-c", str(SERVER_CORE), sys.executable, script,
        "--baseline-only", str(archive), "--duration", str(seconds),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=work, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"in-process timing failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def executable(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed")
    return path


def podium_command(store: Path, port: int, policy: str) -> list[str]:
    return [
        executable("podium"), "serve", "--model-store", str(store), "--host", "127.0.0.1",
        "--port", str(port), "--batching", policy, "--management-port", "0",
    ]  # fmt: skip


def fastapi_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bench.fastapi_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip


def call(
    port: int, path: str, body: bytes | None = None, timeout: float = 2.0
) -> tuple[int, bytes]:
    """GET ``path`` (or POST ``body`` as JSON); return status and body (0: unreachable)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, headers)
    try:
        with OPENER.open(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def predict(port: int) -> tuple[int, bytes]:
    return call(port, ROUTE, json.dumps(REQUEST, ensure_ascii=False).encode(), timeout=10)


def wait_ready(server: Server) -> None:
    """Poll until GET /ping and the model both answer 200; fail on exit or after a deadline.

    The model is asked too, so a server that is healthy but cannot answer it fails here
    rather than as a column of errors.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{tail(server.log)}")
        if call(server.port, "/ping", timeout=1.0)[0] == 200 and predict(server.port)[0] == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready in {READY_TIMEOUT:.0f} s:\n{tail(server.log)}")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def serving(
    name: str, command: Callable[[int], list[str]], logs: Path, env: dict[str, str]
) -> Iterator[Server]:
    """Start ``command(port)`` pinned to the server core; always stop it and its children."""
    port = free_port()
    log = logs / f"{slug(name)}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *command(port)],
            cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(name, process, port, log)
    children: list[int] = []
    try:
        wait_ready(server)
        children = server.children()
        yield server
    finally:
        stop(process, children or server.children())


def stop(process: subprocess.Popen[bytes], children: list[int]) -> None:
    """SIGTERM, then SIGKILL after a timeout; then the same for leftover children."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    for pid in children:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ----------------------------------------------------------------------------- load


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def role_cpu(roles: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}


def wrk(port: int, connections: int, seconds: int) -> dict[str, Any]:
    """Run wrk pinned to the client core; return the JSON line the Lua script prints."""
    command = [
        "taskset", "-c", str(CLIENT_CORE), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{port}{ROUTE}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["text"] = done.stdout
    return result


def measure(server: Server, connections: int, seconds: int) -> Load:
    """One measured wrk run, with the server's CPU time per request."""
    roles = server.roles()
    before = role_cpu(roles)
    result = wrk(server.port, connections, seconds)
    after = role_cpu(roles)
    requests = max(1, result["requests"])
    cpu = {role: (after[role] - before[role]) * 1e6 / requests for role in roles}
    return Load(
        server=server.name,
        connections=connections,
        rps=result["rps"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        non_2xx=result["non_2xx"],
        socket_errors=sum(result["socket_errors"].values()),
        cpu_us_per_request=cpu,
        wrk=result,
    )


def benchmark(server: Server, seconds: int) -> list[Load]:
    status, answer = predict(server.port)
    print(f"  {server.name}: {status} {answer.decode(errors='replace')}")
    wrk(server.port, 64, min(2, seconds))  # warm-up, not recorded
    loads = []
    for connections in CONCURRENCIES:
        load = measure(server, connections, seconds)
        print(f"  {server.name} c{connections}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.3f} ms")
        loads.append(load)
    return loads


def batch_info(port: int) -> dict[str, Any]:
    """Batch-size figures the server exposes, if any (paths in ``BATCH_INFO_PATHS``)."""
    found: dict[str, Any] = {}
    for path in BATCH_INFO_PATHS:
        status, body = call(port, path)
        if status != 200:
            continue
        try:
            hits = list(batch_fields(json.loads(body)))
        except ValueError:
            text = body.decode(errors="replace").splitlines()
            hits = [line for line in text if "batch" in line and not line.startswith("#")]
        if hits:
            found[path] = hits[:40]
    return found


def batch_fields(value: Any, prefix: str = "") -> Iterator[str]:
    """``path = value`` for every JSON field whose name mentions batch."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if "batch" in str(key).lower():
                yield f"{name} = {json.dumps(item)}"
            else:
                yield from batch_fields(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from batch_fields(item, f"{prefix}[{index}]")


# ----------------------------------------------------------------------------- profile


def under_load(server: Server, commands: list[list[str]], seconds: int, connections: int) -> Load:
    """Run ``commands`` (on the client core) from 1 s into a wrk run."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(measure, server, connections, seconds)
        time.sleep(1)
        tools = [
            subprocess.Popen(
                ["taskset", "-c", str(CLIENT_CORE), *command],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for command in commands
        ]
        try:
            for tool in tools:
                _, errors = tool.communicate(timeout=seconds + 60)
                if tool.returncode != 0:
                    message = errors.decode(errors="replace").strip()[-400:]
                    raise RuntimeError(f"{Path(str(tool.args[3])).name} failed: {message}")
        finally:
            for tool in tools:
                if tool.poll() is None:
                    tool.kill()
                    tool.wait()
        return running.result()


def move(pids: list[int], core: int) -> None:
    """Pin every thread of these processes to one core."""
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True,
                       capture_output=True)  # fmt: skip


@contextlib.contextmanager
def alone_on_server_core(server: Server, role: str) -> Iterator[None]:
    """Move the server's other processes to the client core while py-spy watches ``role``.

    py-spy samples wall time: a process that is runnable but preempted (the front end
    right after it wakes its worker, say) would look busy where it last ran. Alone on its
    core a process is either running or idle, so its samples are CPU time.
    """
    others = [pid for name, pids in server.roles().items() if name != role for pid in pids]
    move(others, CLIENT_CORE)
    try:
        yield
    finally:
        move(others, SERVER_CORE)


def profile_python(
    server: Server, seconds: int, window: int, out: Path, connections: int
) -> dict[str, Any]:
    """py-spy on each server process in turn, each alone on the server core."""
    py_spy = executable("py-spy")
    found: dict[str, Any] = {"connections": connections}
    for role, pids in server.roles().items():
        raw = out / f"py-spy-{slug(role)}-c{connections}.raw"
        command = profiling.py_spy_command(py_spy, pids[0], window, raw)
        with alone_on_server_core(server, role):
            load = under_load(server, [command], seconds, connections)
        cpu = load.cpu_us_per_request.get(role, 0.0)
        stacks = profiling.read_stacks(raw)
        found[role] = {"rps": load.rps, **profiling.summarise_python(stacks, cpu)}
    return found


def profile_native(
    server: Server, seconds: int, window: int, out: Path, connections: int
) -> dict[str, Any]:
    """perf record on the server's core (both processes sharing it, as benchmarked)."""
    data = out / f"perf-server-core-c{connections}.data"
    command = profiling.perf_record_command(SERVER_CORE, window, data)
    load = under_load(server, [command], seconds, connections)
    report = subprocess.run(
        profiling.perf_report_command(data), capture_output=True, text=True, check=True
    )
    samples = profiling.read_perf_report(report.stdout)
    summary = profiling.summarise_native(samples, server.roles(), load.rps, window)
    return {"rps": load.rps, "connections": connections, **summary}


def profile_syscalls(server: Server, seconds: int, window: int, out: Path) -> dict[str, Any]:
    """perf stat on the system-call tracepoints, per process."""
    files = {role: out / f"syscalls-{slug(role)}.txt" for role in server.roles()}
    commands = [
        profiling.perf_stat_command(pids[0], window, files[role])
        for role, pids in server.roles().items()
    ]
    load = under_load(server, commands, seconds, 64)
    calls = {role: profiling.read_syscalls(path) for role, path in files.items()}
    return {"rps": load.rps, **profiling.summarise_syscalls(calls, round(load.rps * window))}


def profile(server: Server, seconds: int, out: Path) -> dict[str, Any]:
    """The profiled runs; a view whose tool fails is skipped, with the reason."""
    window = seconds - 2
    result: dict[str, Any] = {"window": window}
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "python_c64": lambda: profile_python(server, seconds, window, out, 64),
        "python_c1": lambda: profile_python(server, seconds, window, out, 1),
        "native_c64": lambda: profile_native(server, seconds, window, out, 64),
        "native_c1": lambda: profile_native(server, seconds, window, out, 1),
        "syscalls": lambda: profile_syscalls(server, seconds, window, out),
    }
    for key, run in runs.items():
        print(f"  profiling {server.name}: {key}")
        try:
            result[key] = run()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
            result[key] = {"error": f"skipped ({error})"}
    return result


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    packages = ("podium", "uvicorn", "uvloop", "httptools", "fastapi", "orjson", "scikit-learn")
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "server_core": SERVER_CORE,
        "client_core": CLIENT_CORE,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
    }


def find(loads: list[Load], server: str, connections: int) -> Load | None:
    return next((x for x in loads if x.server == server and x.connections == connections), None)


def ratios(baseline: dict[str, Any], loads: list[Load]) -> dict[str, Any]:
    """podium against FastAPI, against the in-process ceilings, and its latency overhead."""
    found: dict[str, Any] = {}
    for policy in POLICIES:
        name = podium_name(policy)
        c1, c64 = find(loads, name, 1), find(loads, name, 64)
        if c1 is None or c64 is None:
            continue
        row: dict[str, Any] = {}
        for mine in (c1, c64):
            theirs = find(loads, FASTAPI, mine.connections)
            if theirs is not None and theirs.rps > 0:
                row[f"vs_fastapi_c{mine.connections}"] = mine.rps / theirs.rps
        row["c64_of_single_ceiling"] = c64.rps / baseline["single_rps_ceiling"]
        row["c64_of_batch32_ceiling"] = c64.rps / baseline["batch32_rps_ceiling"]
        row["c1_p50_overhead_ms"] = c1.p50_ms - baseline["single_ms_p50"]
        row["c1_p50_over_idle_call_ms"] = c1.p50_ms - baseline["single_after_idle_ms_p50"]
        found[name] = row
    return found


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render_loads(loads: list[Load]) -> list[str]:
    lines = [
        "| server | connections | req/s | p50 ms | p99 ms | errors | server CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for x in loads:
        cpu = ", ".join(f"{role} {us:.0f}" for role, us in x.cpu_us_per_request.items())
        errors = str(x.errors) if not x.errors else f"{x.non_2xx} non-2xx, {x.socket_errors} socket"
        lines.append(
            f"| {x.server} | {x.connections} | {x.rps:,.0f} | {x.p50_ms:.3f} | {x.p99_ms:.3f} "
            f"| {errors} | {cpu} |"
        )
    return lines


def render_baseline(b: dict[str, Any]) -> list[str]:
    return [
        f"In process (`handler.handle`, core {SERVER_CORE}, one BLAS thread, no HTTP/IPC):",
        "",
        f"- one request per call: {b['single_ms_mean']:.4f} ms mean, "
        f"{b['single_ms_p50']:.4f} ms p50 → ceiling {b['single_rps_ceiling']:,.0f} req/s",
        f"- 32 requests per call: {b['batch32_ms_per_request']:.4f} ms per request "
        f"→ ceiling {b['batch32_rps_ceiling']:,.0f} req/s",
        f"- the worker's `Runner.run` on one request (adds orjson encoding): "
        f"{b['worker_run_single_ms_mean']:.4f} ms mean",
        f"- one request per call after {IDLE * 1000:.1f} ms idle (as at 1 connection): "
        f"{b['single_after_idle_ms_p50']:.4f} ms p50",
    ]


def render_ratios(found: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, r in found.items():
        speedup = r.get("vs_fastapi_c64")
        if speedup is not None:
            lines.append(
                f"- {name} / FastAPI req/s: c64 **{speedup:.2f}x** "
                f"(target ≥ {TARGET_SPEEDUP:.0f}x: {verdict(speedup >= TARGET_SPEEDUP)}), "
                f"c1 {r.get('vs_fastapi_c1', float('nan')):.2f}x"
            )
        lines.append(
            f"- {name} c64 / in-process ceilings: {r['c64_of_single_ceiling']:.0%} of the "
            f"single-request ceiling, {r['c64_of_batch32_ceiling']:.0%} of the batch-32 ceiling"
        )
        overhead = r["c1_p50_overhead_ms"]
        lines.append(
            f"- {name} p50 at c1 - in-process single-call p50: **{overhead:+.3f} ms** "
            f"(target ≤ {TARGET_OVERHEAD_MS} ms: {verdict(overhead <= TARGET_OVERHEAD_MS)}); "
            f"{r['c1_p50_over_idle_call_ms']:+.3f} ms over the after-idle call"
        )
    return lines


def render_batches(batches: dict[str, dict[str, Any]]) -> list[str]:
    if not any(batches.values()):
        paths = ", ".join(BATCH_INFO_PATHS)
        return [f"Batch sizes: not exposed by the server (tried {paths})."]
    lines = ["Batch sizes (as the server reports them, cumulative since it started):", ""]
    for name, found in batches.items():
        for path, hits in found.items():
            lines += [f"{name} `GET {path}`:", "", "```", *hits, "```", ""]
    return lines


def render_profile(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Profile: podium (adaptive)",
        "",
        f"Each view is its own run; its tool watches a {result['window']} s window inside the "
        "load and per-request figures divide by the requests of that window. Throughput "
        "under a profiler is not a result.",
    ]
    renderers = {
        "python": profiling.render_python,
        "native": profiling.render_native,
        "syscalls": profiling.render_syscalls,
    }
    for key, part in result.items():
        if not isinstance(part, dict):
            continue
        lines.append("")
        if "error" in part:
            lines.append(f"{key}: {part['error']}")
        else:
            lines += renderers[key.split("_")[0]](part)
    return lines


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# NSMC sentiment: podium against in-process and plain FastAPI",
        "",
        f"`{report['command']}`",
        "",
        f"{m['cpu']}, {m['cores']} cores; servers pinned to core {m['server_core']}, wrk "
        f"(-t1) to core {m['client_core']}; {report['duration']} s per run; "
        f"Python {m['python']}, kernel {m['kernel']}.",
        "",
        *render_loads(report["loads"]),
        "",
        *render_baseline(report["in_process"]),
        "",
        "Ratios:",
        "",
        *render_ratios(report["ratios"]),
        "",
        *render_batches(report["batches"]),
    ]
    if report.get("profile"):
        lines += ["", *render_profile(report["profile"])]
    return "\n".join(lines) + "\n"


def write_report(text: str, report: dict[str, Any], out: Path, name: str = "results") -> None:
    """Print the markdown and write it, with the raw JSON, under ``out`` as ``name``.md/.json."""
    print("\n" + text)
    markdown, raw = out / f"{name}.md", out / f"{name}.json"
    markdown.write_text(text)
    raw.write_text(to_json(report) + "\n")
    print(f"wrote {markdown} and {raw}")


def to_json(report: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, Load):
            return asdict(value)
        return str(value)

    return json.dumps(report, indent=2, ensure_ascii=False, default=default)


# ----------------------------------------------------------------------------- main

POLICIES = ("adaptive", "fixed")
FASTAPI = "FastAPI (uvicorn, sync def)"


def podium_name(policy: str) -> str:
    return "podium (adaptive)" if policy == "adaptive" else "podium (fixed: 5 ms, batch 32)"


def run_servers(
    archive: Path, model_file: Path, args: argparse.Namespace, logs: Path
) -> tuple[list[Load], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Benchmark each podium policy, then FastAPI; profile podium (adaptive) if asked."""
    loads: list[Load] = []
    batches: dict[str, dict[str, Any]] = {}
    profiled = None
    for policy in POLICIES:
        name = podium_name(policy)
        command = functools.partial(podium_command, archive.parent, policy=policy)
        with serving(name, command, logs, {}) as server:
            loads += benchmark(server, args.duration)
            batches[name] = batch_info(server.port)
            if args.profile and policy == "adaptive":
                profiled = profile(server, args.duration, args.out)
    env = {**ONE_THREAD, "NSMC_MODEL": str(model_file)}
    with serving(FASTAPI, fastapi_command, logs, env) as server:
        loads += benchmark(server, args.duration)
    return loads, batches, profiled


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="folder for results")
    parser.add_argument(
        "--profile", action="store_true", help="also profile podium (py-spy; perf if available)"
    )
    return parser.parse_args()


def check_machine(args: argparse.Namespace) -> None:
    if args.profile and args.duration < 3:
        raise SystemExit("--profile needs --duration 3 or more")
    if not {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
        raise SystemExit(f"needs cores {CLIENT_CORE} and {SERVER_CORE} (for taskset)")
    for tool in ("wrk", "taskset", "pgrep", *(["py-spy"] if args.profile else [])):
        executable(tool)


def main() -> None:
    args = parse_args()
    check_machine(args)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as folder:
        work = Path(folder)
        print("training and archiving the NSMC example")
        archive, model_file = build_model(work)
        print("timing the handler in process")
        baseline = in_process_baseline(archive, work, seconds=min(3.0, args.duration))
        print("benchmarking the servers")
        loads, batches, profiled = run_servers(archive, model_file, args, logs)
    report = {
        "command": " ".join(["python", *[a for a in sys.argv if a]]),
        "duration": args.duration,
        "machine": machine(),
        "in_process": baseline,
        "loads": loads,
        "ratios": ratios(baseline, loads),
        "batches": batches,
        "profile": profiled,
    }
    write_report(render(report), report, args.out)


if __name__ == "__main__":
    main()
