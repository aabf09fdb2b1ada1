"""Benchmark podium under front-end-bound overload: admitted answers/s and the cost of a 503.

    python bench/overload.py [--duration 10] [--connections 1000] [--queue 32] [--out bench/out]
                             [--probe-rate 40] [--probe-connection keep-alive|fresh]
                             [--probe-retry-after]

The acceptance figure of the hardening issue: with the queue bounded, a server flooded by
far more clients than it can serve should keep answering about as many of them as at its
capacity, and refuse the rest quickly. The conventions are ``bench/nsmc.py``'s, whose
helpers it imports: the NSMC example is trained and archived, every server's whole process
tree is pinned to core 1, ``wrk -t1`` to core 0, every request is ``bench/wrk_post.lua``'s
POST, server CPU time is read from ``/proc``. One run measures, in order:

1. **In-process ceiling**, for reference: ``nsmc.in_process_baseline``, shortened (1 s per
   timing), on core 1.
2. **podium**: ``podium serve --workers 2 --max-queue QUEUE`` (adaptive batching), after a
   short unmeasured warm-up at 16 connections, is loaded by wrk at **16 connections**
   (capacity: nothing should be refused) and at **``--connections``** (overload). For each:
   responses/s, admitted (2xx) answers/s, rejected (non-2xx, which wrk counts as status
   errors) answers/s, socket errors, wrk's latency over all answers, server CPU by role (as
   a share of the server core and per response), how busy each core was (``/proc/stat``),
   and the server's own answer counts by status (``/metrics``).
3. **The probe**, during the overload run only: a plain ``http.client`` process, also pinned
   to core 0, sends one request at a time (``--probe-rate`` per second, on one kept-alive
   connection or a fresh one per request) from 1 s into the wrk run to 1 s before its end
   (a quarter of the run, for runs under 4 s), and records each answer's status and
   latency. wrk's latencies mix admitted and refused answers; the probe's are reported by
   status: p50/p99 of its 503s and of its 200s. It also checks that every 503 is a JSON
   object with ``Retry-After``. Its own run-queue wait (``/proc/thread-self/schedstat``:
   time it was runnable but core 0 ran wrk) bounds how much of its latency is the client's.
4. **plain FastAPI** (``bench/fastapi_app.py``, uvicorn, as ``nsmc.py`` runs it): the same
   two loads and the probe, so its ratio sits next to podium's. It has no queue bound: it
   admits everything and its latency grows instead.

The verdicts: podium's admitted answers/s at ``--connections`` over its capacity (answers/s
at 16) ≥ 0.8 (the goal is 0.9), and the probe's 503 p99 ≤ 50 ms. "Front end CPU per 503"
is an estimate: the front end's CPU time in the overload run, less its CPU per admitted
answer at 16 connections times the admitted answers, over the refused ones.

The markdown and the raw JSON (probe samples included) are printed and written to ``--out``
as ``overload.md`` and ``overload.json``; server logs go to ``--out``'s ``logs/``. The soft
open-files limit is raised for wrk and the servers (a hard limit too low is an error).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nsmc
from nsmc import Load, Server, serving

CAPACITY_CONNECTIONS = 16
WORKERS = 2
TARGET_RATIO = 0.8
GOAL_RATIO = 0.9
TARGET_REFUSAL_P99_MS = 50.0
PROBE_LEAD = 1.0  # seconds of wrk before and after the probe (a quarter of short runs)
PROBE_TIMEOUT = 15.0  # seconds; above wrk's --timeout of 10 s
PROBE_HEADERS = {"Content-Type": "application/json"}
CORES = (nsmc.CLIENT_CORE, nsmc.SERVER_CORE)
FASTAPI = nsmc.FASTAPI
STATUS_LINE = re.compile(r"^podium_requests(?:_total)?\{([^}]*)\}\s+(\S+)", re.MULTILINE)


def podium_name(queue: int) -> str:
    return f"podium ({WORKERS} workers, queue {queue})"


# ----------------------------------------------------------------------------- probe


def probe(
    port: int, start_at: float, seconds: float, rate: float, fresh: bool, polite: bool = False
) -> dict[str, Any]:
    """From wall-clock ``start_at``, POST one request at a time, ``rate`` a second at most
    (``polite``: after a 503, not before its ``Retry-After`` has passed)."""
    body = json.dumps(nsmc.REQUEST, ensure_ascii=False).encode()
    time.sleep(max(0.0, start_at - time.time()))
    waited = run_queue_wait()
    clock = time.perf_counter
    end = clock() + seconds
    interval = 1.0 / rate
    next_send = clock()
    samples: list[dict[str, Any]] = []
    connection: http.client.HTTPConnection | None = None
    while (now := clock()) < end:
        if now < next_send:
            time.sleep(next_send - now)
        # Never catch up in a burst: after a slow answer the next request goes at once.
        next_send = max(next_send + interval, clock())
        sample, connection = probe_once(connection, port, body)
        samples.append(sample)
        if polite and sample.get("retry_after"):
            next_send = max(next_send, clock() + float(sample["retry_after"]))
        if fresh and connection is not None:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()
    return {"samples": samples, "run_queue_wait_ms": (run_queue_wait() - waited) / 1e6}


def probe_once(
    connection: http.client.HTTPConnection | None, port: int, body: bytes
) -> tuple[dict[str, Any], http.client.HTTPConnection | None]:
    """One POST, timed from before the connection (if a new one is needed) to the last byte."""
    sample: dict[str, Any] = {"new_connection": connection is None}
    began = time.perf_counter()
    try:
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
        connection.request("POST", nsmc.ROUTE, body, PROBE_HEADERS)
        answer = connection.getresponse()
        data = answer.read()
    except (OSError, http.client.HTTPException) as error:
        sample.update(status=0, ms=(time.perf_counter() - began) * 1000)
        sample["error"] = type(error).__name__
        if connection is not None:
            connection.close()
        return sample, None
    sample.update(status=answer.status, ms=(time.perf_counter() - began) * 1000)
    if answer.status == 503:
        sample["retry_after"] = answer.getheader("Retry-After")
        sample["json"] = is_json_object(answer.getheader("Content-Type"), data)
    if answer.will_close:
        sample["closed"] = True
        connection.close()
        return sample, None
    return sample, connection


def is_json_object(content_type: str | None, data: bytes) -> bool:
    if not (content_type or "").startswith("application/json"):
        return False
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def run_queue_wait() -> int:
    """Nanoseconds this thread has spent runnable but not running (0 where unknown)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def run_probe(port: int, start_at: float, seconds: float, args: argparse.Namespace) -> Any:
    """Run ``probe`` in a fresh process on the client core; return its JSON line."""
    command = [
        "taskset", "-c", str(nsmc.CLIENT_CORE), sys.executable, __file__,
        "--probe", str(port), "--probe-at", repr(start_at), "--probe-for", repr(seconds),
        "--probe-rate", str(args.probe_rate), "--probe-connection", args.probe_connection,
        *(["--probe-retry-after"] if args.probe_retry_after else []),
    ]  # fmt: skip
    timeout = start_at - time.time() + seconds + PROBE_TIMEOUT + 30
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1]


def summarise_probe(found: dict[str, Any]) -> dict[str, Any]:
    """Counts and latency percentiles by status; the 503s' format; connections opened."""
    samples = found["samples"]
    by_status: dict[str, dict[str, Any]] = {}
    for status in sorted({200, 503} | {s["status"] for s in samples}):
        ms = [s["ms"] for s in samples if s["status"] == status]
        by_status[str(status)] = {
            "count": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms, default=None),
        }
    refused = [s for s in samples if s["status"] == 503]
    return {
        "requests": len(samples),
        "by_status": by_status,
        "refusals_well_formed": sum(1 for s in refused if s["json"] and s["retry_after"]),
        "refusals_without_json": sum(1 for s in refused if not s["json"]),
        "refusals_without_retry_after": sum(1 for s in refused if not s["retry_after"]),
        "new_connections": sum(1 for s in samples if s["new_connection"]),
        "closed_by_server": sum(1 for s in samples if s.get("closed")),
        "errors": sorted({s["error"] for s in samples if "error" in s}),
        "run_queue_wait_ms": found["run_queue_wait_ms"],
    }


# ----------------------------------------------------------------------------- load


@dataclass
class Run:
    """One wrk run, what it admitted and refused, and where the CPU time went."""

    load: Load
    admitted_rps: float
    rejected_rps: float
    core_busy: dict[str, float]
    """Busy share of each core over the run (``/proc/stat``), by core number."""
    cpu_share: dict[str, float]
    """Server CPU time over wall time, by process role (1.0 is the whole server core)."""
    statuses: dict[str, float] | None
    """The server's own answer counts by status during the run (podium's ``/metrics``)."""
    probe: dict[str, Any] | None = None


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) clock ticks of each benchmark core since boot."""
    found: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if name in {f"cpu{core}" for core in CORES}:
            values = [int(tick) for tick in ticks]
            idle = values[3] + values[4]  # idle + iowait
            found[name.removeprefix("cpu")] = (sum(values[:8]) - idle, sum(values[:8]))
    return found


def busy_between(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> Any:
    return {
        core: (after[core][0] - before[core][0]) / max(1, after[core][1] - before[core][1])
        for core in before
    }


def statuses(port: int) -> dict[str, float] | None:
    """podium's answered requests by status from ``/metrics`` (None if not exposed)."""
    status, body = nsmc.call(port, "/metrics")
    if status != 200:
        return None
    counts: dict[str, float] = {}
    for labels, value in STATUS_LINE.findall(body.decode(errors="replace")):
        code = re.search(r'status="(\d+)"', labels)
        if code:
            counts[code[1]] = counts.get(code[1], 0.0) + float(value)
    return counts


def loaded(
    server: Server, connections: int, seconds: int, args: argparse.Namespace, probed: bool
) -> Run:
    """One measured wrk run; with ``probed``, the probe runs inside it."""
    counted, cores = statuses(server.port), core_times()
    with ThreadPoolExecutor(1) as pool:
        started = time.time()
        running = pool.submit(nsmc.measure, server, connections, seconds)
        found = None
        if probed:
            lead = min(PROBE_LEAD, seconds / 4)
            found = run_probe(server.port, started + lead, seconds - 2 * lead, args)
        load = running.result()
    busy = busy_between(cores, core_times())
    after = statuses(server.port)
    requests, duration = load.wrk["requests"], load.wrk["duration_s"]
    share = {role: us * requests / duration / 1e6 for role, us in load.cpu_us_per_request.items()}
    return Run(
        load=load,
        admitted_rps=(requests - load.non_2xx) / duration,
        rejected_rps=load.non_2xx / duration,
        core_busy=busy,
        cpu_share=share,
        statuses=None if counted is None or after is None else counted_between(counted, after),
        probe=None if found is None else {**summarise_probe(found), "samples": found["samples"]},
    )


def counted_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    counts = {code: n - before.get(code, 0.0) for code, n in after.items()}
    return {code: n for code, n in counts.items() if n}


def benchmark(server: Server, args: argparse.Namespace) -> list[Run]:
    """Warm up, then capacity (16 connections), then overload with the probe."""
    status, answer = nsmc.predict(server.port)
    print(f"  {server.name}: {status} {answer.decode(errors='replace')}")
    nsmc.wrk(server.port, CAPACITY_CONNECTIONS, min(2, args.duration))  # warm-up, not recorded
    runs = []
    for connections in (CAPACITY_CONNECTIONS, args.connections):
        run = loaded(server, connections, args.duration, args, connections == args.connections)
        print(
            f"  {server.name} c{connections}: {run.load.rps:,.0f} answers/s, "
            f"{run.admitted_rps:,.0f} admitted/s, {run.rejected_rps:,.0f} refused/s"
        )
        runs.append(run)
    return runs


def podium_command(store: Path, queue: int, port: int) -> list[str]:
    return [
        *nsmc.podium_command(store, port, "adaptive"),
        "--workers", str(WORKERS), "--max-queue", str(queue),
    ]  # fmt: skip


def run_servers(
    archive: Path, model_file: Path, args: argparse.Namespace, logs: Path
) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {}
    command = functools.partial(podium_command, archive.parent, args.queue)
    with serving(podium_name(args.queue), command, logs, {}) as server:
        runs[server.name] = benchmark(server, args)
    env = {**nsmc.ONE_THREAD, "NSMC_MODEL": str(model_file)}
    with serving(FASTAPI, nsmc.fastapi_command, logs, env) as server:
        runs[server.name] = benchmark(server, args)
    return runs


# ----------------------------------------------------------------------------- report


def ratios(runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Admitted answers/s under overload over capacity, per server; podium's 503 cost."""
    found: dict[str, Any] = {}
    for name, (capacity, overload) in runs.items():
        row: dict[str, Any] = {
            "capacity_rps": capacity.admitted_rps,
            "admitted_rps": overload.admitted_rps,
            "ratio": overload.admitted_rps / capacity.admitted_rps if capacity.admitted_rps else 0,
        }
        refused = overload.probe["by_status"]["503"] if overload.probe else {}
        row["refusal_p50_ms"] = refused.get("p50_ms")
        row["refusal_p99_ms"] = refused.get("p99_ms")
        row["front_end_us_per_refusal"] = refusal_cost(capacity, overload)
        found[name] = row
    return found


def refusal_cost(capacity: Run, overload: Run) -> float | None:
    """Front-end CPU µs per refused answer, counting admitted ones at their capacity cost."""
    at_capacity = capacity.load.cpu_us_per_request.get("front end")
    front_end = overload.load.cpu_us_per_request.get("front end")
    if at_capacity is None or front_end is None or not overload.load.non_2xx:
        return None
    requests = overload.load.wrk["requests"]
    admitted = requests - overload.load.non_2xx
    return (front_end * requests - at_capacity * admitted) / overload.load.non_2xx


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_runs(runs: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| server | connections | answers/s | admitted (2xx)/s | refused/s | socket errors "
        "| p50 ms | p99 ms | server core: CPU share by role | CPU µs/answer "
        "| core 0 / core 1 busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for name, found in runs.items():
        for run in found:
            x = run.load
            share = ", ".join(f"{role} {value:.0%}" for role, value in run.cpu_share.items())
            cpu = ", ".join(f"{role} {us:.0f}" for role, us in x.cpu_us_per_request.items())
            busy = " / ".join(f"{run.core_busy[str(core)]:.0%}" for core in CORES)
            lines.append(
                f"| {name} | {x.connections:,} | {x.rps:,.0f} | {run.admitted_rps:,.0f} "
                f"| {run.rejected_rps:,.0f} | {x.socket_errors} | {x.p50_ms:.2f} | "
                f"{x.p99_ms:.2f} | {share} | {cpu} | {busy} |"
            )
    return lines


def render_statuses(runs: dict[str, list[Run]]) -> list[str]:
    lines = []
    for name, found in runs.items():
        for run in found:
            if run.statuses is not None:
                counts = ", ".join(f"{code}: {n:,.0f}" for code, n in sorted(run.statuses.items()))
                x = run.load
                seen = f"wrk: {x.wrk['requests'] - x.non_2xx:,} 2xx, {x.non_2xx:,} non-2xx"
                lines.append(f"- {name}, {x.connections:,} connections: {counts} ({seen})")
    if not lines:
        return []
    return ["Answers by status, as the server counts them (`/metrics`):", "", *lines]


def render_probes(runs: dict[str, list[Run]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"Probe ({args.probe_rate:g} requests/s at most, one at a time, "
        f"{args.probe_connection} connection"
        f"{', honouring Retry-After' if args.probe_retry_after else ''}, "
        f"core {nsmc.CLIENT_CORE}) during the "
        f"{args.connections:,}-connection run:",
        "",
        "| server | probe requests | status | count | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for name, found in runs.items():
        probe = found[-1].probe
        if probe is None:
            continue
        for status, row in probe["by_status"].items():
            lines.append(
                f"| {name} | {probe['requests']} | {status} | {row['count']} "
                f"| {number(row['p50_ms'], 2)} | {number(row['p99_ms'], 2)} "
                f"| {number(row['max_ms'], 2)} |"
            )
        errors = f"; errors: {', '.join(probe['errors'])}" if probe["errors"] else ""
        waited = probe["run_queue_wait_ms"]
        notes.append(
            f"- {name}: connections opened {probe['new_connections']}, answers that closed "
            f"their connection {probe['closed_by_server']}; the probe waited "
            f"for core {nsmc.CLIENT_CORE} {waited / max(1, probe['requests']):.2f} ms per "
            f"request ({waited:.1f} ms in all){errors}"
        )
    return [*lines, "", *notes]


def render_ratios(report: dict[str, Any]) -> list[str]:
    lines = []
    c = report["connections"]
    for name, r in report["ratios"].items():
        ratio = r["ratio"]
        line = (
            f"- {name}: admitted/s at {c:,} connections / capacity at {CAPACITY_CONNECTIONS}: "
            f"{r['admitted_rps']:,.0f} / {r['capacity_rps']:,.0f} = **{ratio:.2f}x**"
        )
        if name == report["podium"]:
            line += (
                f" (≥ {TARGET_RATIO}x: {verdict(ratio >= TARGET_RATIO)}; "
                f"goal {GOAL_RATIO}x: {verdict(ratio >= GOAL_RATIO)})"
            )
        lines.append(line)
    r = report["ratios"][report["podium"]]
    probe = report["runs"][report["podium"]][-1].probe
    if r["refusal_p99_ms"] is None:
        lines.append("- podium 503 p99 (probe): no 503 seen by the probe: **not measured**")
    else:
        ok = r["refusal_p99_ms"] <= TARGET_REFUSAL_P99_MS
        lines.append(
            f"- podium 503 p99 (probe): **{r['refusal_p99_ms']:.2f} ms** "
            f"(≤ {TARGET_REFUSAL_P99_MS:.0f} ms: {verdict(ok)}); p50 {r['refusal_p50_ms']:.2f} ms"
        )
        refused = probe["by_status"]["503"]["count"]
        well_formed = probe["refusals_well_formed"]
        lines.append(
            f"- every 503 a JSON object with `Retry-After`: {verdict(well_formed == refused)} "
            f"({well_formed} of {refused}; {probe['refusals_without_json']} without JSON, "
            f"{probe['refusals_without_retry_after']} without Retry-After)"
        )
    cost = r["front_end_us_per_refusal"]
    if cost is not None:
        lines.append(f"- podium front end CPU per 503 (estimate): {cost:.0f} µs")
    return lines


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    m = report["machine"]
    b = report["in_process"]
    lines = [
        f"# NSMC under overload: {report['podium']}",
        "",
        f"`{report['command']}`",
        "",
        f"{m['cpu']}, {m['cores']} cores; servers pinned to core {m['server_core']}, wrk "
        f"(-t1) and the probe to core {m['client_core']}; {report['duration']} s per run; "
        f"Python {m['python']}, kernel {m['kernel']}; somaxconn {m['somaxconn']}, "
        f"open files {m['open_files']}.",
        "",
        *render_runs(report["runs"]),
        "",
        *render_probes(report["runs"], args),
        "",
        *render_statuses(report["runs"]),
        "",
        f"In process (`handler.handle`, core {nsmc.SERVER_CORE}, one BLAS thread, 1 s each): "
        f"ceiling {b['single_rps_ceiling']:,.0f} req/s one request per call, "
        f"{b['batch32_rps_ceiling']:,.0f} req/s at 32 per call.",
        "",
        "Ratios and verdicts:",
        "",
        *render_ratios(report),
    ]
    return "\n".join(lines) + "\n"


def machine(connections: int) -> dict[str, Any]:
    found = nsmc.machine()
    found["somaxconn"] = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    found["open_files"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    found["connections"] = connections
    return found


def to_json(value: Any) -> Any:
    """Runs as plain dicts, so ``nsmc.to_json`` can write them."""
    if isinstance(value, Run):
        return asdict(value)
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--connections", type=int, default=1000, help="wrk connections of the overload run"
    )
    parser.add_argument("--queue", type=int, default=32, help="podium's --max-queue")
    parser.add_argument("--out", type=Path, default=nsmc.BENCH / "out", help="folder for results")
    parser.add_argument(
        "--probe-rate", type=float, default=40.0, help="probe requests per second, at most"
    )
    parser.add_argument(
        "--probe-connection",
        choices=("keep-alive", "fresh"),
        default="keep-alive",
        help="the probe keeps one connection, or opens one per request (timed with it)",
    )
    parser.add_argument(
        "--probe-retry-after",
        action="store_true",
        help="the probe honours Retry-After: after a 503 it waits that long before its next "
        "request (as HTTP clients should)",
    )
    # The fresh process run_probe starts.
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--probe-for", type=float, help=argparse.SUPPRESS)
    return parser.parse_args()


def raise_open_files(connections: int) -> None:
    """Raise the soft open-files limit (inherited by wrk and the servers) to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + 1024
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"{connections} connections need {needed} open files; hard limit {hard}")
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def check_machine(args: argparse.Namespace) -> None:
    if args.duration < 2:
        raise SystemExit("--duration must be 2 or more (the probe runs inside each run)")
    nsmc.check_machine(argparse.Namespace(profile=False, duration=args.duration))
    raise_open_files(args.connections)


def main() -> None:
    args = parse_args()
    if args.probe is not None:
        found = probe(
            args.probe, args.probe_at, args.probe_for, args.probe_rate,
            args.probe_connection == "fresh", args.probe_retry_after,
        )  # fmt: skip
        print(json.dumps(found))
        return
    check_machine(args)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podium-overload-") as folder:
        work = Path(folder)
        print("training and archiving the NSMC example")
        archive, model_file = nsmc.build_model(work)
        print("timing the handler in process")
        baseline = nsmc.in_process_baseline(archive, work, seconds=1.0)
        print("benchmarking the servers")
        runs = run_servers(archive, model_file, args, logs)
    report = {
        "command": " ".join(["python", *[a for a in sys.argv if a]]),
        "duration": args.duration,
        "connections": args.connections,
        "queue": args.queue,
        "probe": {"rate": args.probe_rate, "connection": args.probe_connection},
        "machine": machine(args.connections),
        "in_process": baseline,
        "podium": podium_name(args.queue),
        "runs": runs,
        "ratios": ratios(runs),
    }
    nsmc.write_report(render(report, args), to_json(report), args.out, name="overload")


if __name__ == "__main__":
    main()
