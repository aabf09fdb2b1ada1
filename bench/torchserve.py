"""Benchmark the same TorchServe ``.mar`` served by TorchServe itself and by podium.

    python bench/torchserve.py [--duration 10] [--warmup 30] [--out bench/out/torchserve]
                               [--torchserve /work/tsvenv/bin/torchserve] [--fixed]

TorchServe is no dependency of podium and stays out of its environment: install it into a
virtual environment of its own (``torch==2.13.0`` exactly takes the local CPU wheel) and
point ``--torchserve`` at its ``torchserve`` command. It needs Java 17 (``java`` on PATH,
or ``JAVA_HOME``)::

    python3 -m venv /work/tsvenv
    /work/tsvenv/bin/pip install torch==2.13.0 torchserve==0.12.0 pyyaml

The conventions are ``bench/nsmc.py``'s, whose helpers it imports: every server's whole
process tree is pinned to core 1, ``wrk -t1`` to core 0, server CPU time per request is read
from ``/proc``. Every request is ``POST /predictions/nsmc_ts`` with the ``text/plain`` body
``정말 재밌게 잘봤습니다!``. One run measures, in order:

1. **The archive.** ``examples/torchserve_migration`` is trained (``train.py --out``) and,
   once per case, archived with ``torch-model-archiver`` exactly as its ``make_mar.sh``
   does, the case's ``batchSize``/``maxBatchDelay`` written into the archive's
   ``model-config.yaml`` and into the generated ``config.properties`` (its ``models``
   JSON). Both places, because TorchServe takes these from the archive's yaml when it
   sets them and reads ``config.properties`` only for what the yaml leaves out.
2. **In-process ceiling.** The archive is unpacked and its handler loaded the way a podium
   worker does (``podium.archive.mar.unpack``, ``podium.backends.local.worker.load``), in a
   fresh process on core 1 with one torch thread, and ``handler.handle`` is timed on 1
   request and on 32 per call: no HTTP, no IPC, the most a server could reach.
3. **Per case** (batch size 1; batch size 32 with a 5 ms delay): **TorchServe**
   (``torchserve --start --foreground --ncs --disable-token-auth --ts-config``: its launcher,
   the Java front end and its Python worker, default logging), then **podium** (``podium
   serve --ts-config`` on the same ``config.properties``, or ``--model-store`` where the
   ``--ts-config`` flag is missing; default batching policy, and ``fixed`` too with
   ``--fixed``), each serving the same ``.mar`` file with one worker.
4. **plain FastAPI** (``bench/fastapi_torchserve_app.py``): tokenizer + TorchScript model
   per request in a sync endpoint, under ``uvicorn --loop uvloop --http httptools``.

Each server gets the same unmeasured warm-up at 64 connections (``--warmup`` seconds:
TorchServe's JVM needs it to compile its hot paths), then one measured run at 1 and at 64
connections. Memory is the RSS summed over the server's whole process tree (launcher,
front end, workers), sampled every 0.5 s during the 64-connection run; the peak is
reported, with its split by process.

The markdown table, the ratios against the targets (podium ≥ 2.5x TorchServe's req/s at
batch size 1 and ≥ 2x at batch 32, both at 64 connections; lower p99; under half the RSS)
and against the in-process ceilings and FastAPI, and the raw JSON go to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nsmc
import psutil
import yaml
from nsmc import Load, Server, find, measure, pinned, slug, time_calls, verdict, wrk

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE = ROOT / "examples" / "torchserve_migration"
MODEL = "nsmc_ts"
ROUTE = f"/predictions/{MODEL}"
TEXT = "정말 재밌게 잘봤습니다!"
DEFAULT_TORCHSERVE = Path("/work/tsvenv/bin/torchserve")
BATCH = 32
TARGET_RSS_SHARE = 0.5
ONE_THREAD = {**nsmc.ONE_THREAD, "TORCH_THREADS": "1", "PODIUM_THREADS": "1"}
FASTAPI = "FastAPI (uvicorn, sync def, TorchScript per request)"
SAMPLE_EVERY = 0.5  # seconds between RSS samples under load
MiB = 1024 * 1024

# bench/nsmc.py's helpers read the route and the wrk script from its module globals.
nsmc.MODEL = MODEL
nsmc.ROUTE = ROUTE
nsmc.READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Case:
    """One batching configuration, applied to both servers."""

    batch_size: int
    max_batch_delay_ms: int
    target_speedup: float

    @property
    def label(self) -> str:
        if self.batch_size == 1:
            return "batch 1"
        return f"batch {self.batch_size}, {self.max_batch_delay_ms} ms"


CASES = (Case(1, 5, 2.5), Case(BATCH, 5, 2.0))


def torchserve_name(case: Case) -> str:
    return f"TorchServe ({case.label})"


def podium_name(case: Case, policy: str = "adaptive") -> str:
    return f"podium ({case.label})" if policy == "adaptive" else f"podium ({case.label}, fixed)"


# ----------------------------------------------------------------------------- model


def train(work: Path) -> Path:
    """Train the example in a fresh process; return its artifacts folder."""
    artifacts = work / "artifacts"
    command = [sys.executable, str(EXAMPLE / "train.py"), "--out", str(artifacts)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        print(f"  train: {line}")
    if done.returncode != 0:
        raise RuntimeError(f"train.py failed:\n{done.stderr[-2000:]}")
    return artifacts


def archive(artifacts: Path, case: Case, folder: Path) -> Path:
    """The example's ``make_mar.sh``, with the case's batching in its model-config.yaml."""
    config = yaml.safe_load((EXAMPLE / "model-config.yaml").read_text(encoding="utf-8")) or {}
    config.update(
        batchSize=case.batch_size, maxBatchDelay=case.max_batch_delay_ms, minWorkers=1,
        maxWorkers=1,
    )  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "model-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    store = folder / "model_store"
    store.mkdir()
    extras = (EXAMPLE / "tokenizer.py", artifacts / "vocab.json", artifacts / "index_to_name.json")
    extra = ",".join(str(path) for path in extras)
    command = [
        nsmc.executable("torch-model-archiver"), "--model-name", MODEL, "--version", "1.0",
        "--serialized-file", str(artifacts / "model.pt"), "--handler", str(EXAMPLE / "handler.py"),
        "--extra-files", extra, "--config-file", str(folder / "model-config.yaml"),
        "--export-path", str(store), "--force",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return store / f"{MODEL}.mar"


def config_properties(case: Case, store: Path, port: int, path: Path) -> Path:
    """A config.properties like the example's, on free loopback ports, for both servers."""
    models = {
        MODEL: {
            "1.0": {
                "defaultVersion": True, "marName": f"{MODEL}.mar", "minWorkers": 1,
                "maxWorkers": 1, "batchSize": case.batch_size,
                "maxBatchDelay": case.max_batch_delay_ms, "responseTimeout": 120,
            }
        }
    }  # fmt: skip
    lines = [
        f"inference_address=http://127.0.0.1:{port}",
        f"management_address=http://127.0.0.1:{nsmc.free_port()}",
        f"metrics_address=http://127.0.0.1:{nsmc.free_port()}",
        f"model_store={store}",
        f"load_models={MODEL}.mar",
        "default_workers_per_model=1",
        "job_queue_size=100",
        "max_request_size=6553500",
        "default_response_timeout=120",
        "disable_token_authorization=true",
        f"models={json.dumps(models)}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def management_port(config: Path) -> int:
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("management_address="):
            return int(line.rsplit(":", 1)[1])
    raise ValueError(f"{config}: no management_address")


# ----------------------------------------------------------------------------- in process


def in_process_baseline(mar: Path, work: Path, seconds: int) -> dict[str, Any]:
    """Time the handler in a fresh process on the server core (see ``time_handler``).

    A fresh process, because this one is not pinned and torch, once its thread pool has
    started on every core, slows one-thread timings on a single core.
    """
    return nsmc.run_baseline(__file__, mar, work, seconds, env={**os.environ, **ONE_THREAD})


def time_handler(mar: Path, work: Path, seconds: float) -> dict[str, Any]:
    """Load the .mar as a podium worker does; time ``handle`` on 1 and on 32 requests."""
    import torch

    from podium.archive.mar import unpack
    from podium.backends.local import wire
    from podium.backends.local.worker import load

    torch.set_num_threads(1)
    model_dir = work / "unpacked"
    unpack(mar, model_dir)
    runner = load(wire.Load(str(model_dir), 0, False))
    handler, context = runner.handler, runner.context
    answer = handler.handle([TEXT], context)
    batch = [TEXT] * BATCH
    with pinned(nsmc.SERVER_CORE):
        single = time_calls(lambda: handler.handle([TEXT], context), seconds)
        batched = time_calls(lambda: handler.handle(batch, context), seconds, warmup=50)
    single_ms = statistics.fmean(single)
    batch_ms = statistics.fmean(batched) / BATCH
    return {
        "loader": "podium.archive.mar.unpack + podium.backends.local.worker.load",
        "handler": type(handler).__name__,
        "answer": repr(answer[0])[:200],
        "torch_threads": torch.get_num_threads(),
        "single_ms_mean": single_ms,
        "single_ms_p50": statistics.median(single),
        "batch32_ms_per_request": batch_ms,
        "batch32_ms_per_call_p50": statistics.median(batched),
        "single_rps_ceiling": 1000 / single_ms,
        "batch32_rps_ceiling": 1000 / batch_ms,
        "calls": {"single": len(single), "batch32": len(batched)},
    }


# ----------------------------------------------------------------------------- servers


@dataclass
class Tree(Server):
    """A server and its whole process tree, each process named by its role."""

    kind: str = "podium"
    management: int | None = None
    folder: Path | None = None

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def role(self, process: psutil.Process) -> str:
        if self.kind == "fastapi":
            return "server"
        if self.kind == "podium":
            return "front end" if process.pid == self.pid else "worker"
        with contextlib.suppress(psutil.Error):
            if process.name() == "java":
                return "JVM"
            if any("model_service_worker" in part for part in process.cmdline()):
                return "worker"
        return "launcher"

    def roles(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for process in self.processes():
            found.setdefault(self.role(process), []).append(process.pid)
        return found


def memory(server: Tree) -> dict[str, float]:
    """RSS of the whole tree in MiB, by role and in total."""
    found: dict[str, float] = {}
    for process in server.processes():
        try:
            size = process.memory_info().rss
        except psutil.Error:
            continue
        role = server.role(process)
        found[role] = found.get(role, 0.0) + size / MiB
    found["total"] = sum(found.values())
    return found


def predict(port: int, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST the review as text/plain; return status and body (0: unreachable)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{ROUTE}", TEXT.encode(), {"Content-Type": "text/plain"}
    )
    try:
        with nsmc.OPENER.open(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def wait_ready(server: Tree) -> None:
    """Poll until GET /ping and a text/plain prediction both answer 200; fail on exit or
    after a deadline. (TorchServe opens its port once the startup models are loaded.)"""
    deadline = time.monotonic() + nsmc.READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{nsmc.tail(server.log, 40)}")
        if (
            nsmc.call(server.port, "/ping", timeout=1.0)[0] == 200
            and predict(server.port)[0] == 200
        ):
            return
        time.sleep(0.2)
    log = nsmc.tail(server.log, 40)
    raise RuntimeError(f"{server.name} not ready in {nsmc.READY_TIMEOUT:.0f} s:\n{log}")


@contextlib.contextmanager
def serving(
    name: str, kind: str, command: list[str], port: int, work: Path, env: dict[str, str],
    management: int | None = None,
) -> Iterator[Tree]:  # fmt: skip
    """Start ``command`` with its whole tree pinned to the server core; always stop it all.

    The log is written under ``work`` (TorchServe logs every request several times) and its
    last lines are kept in ``--out``'s ``logs/`` by ``save_log``.
    """
    folder = work / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["taskset", "-c", str(nsmc.SERVER_CORE), *command],
            cwd=ROOT if kind == "fastapi" else folder, env={**os.environ, **env},
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Tree(name, process, port, log, kind=kind, management=management, folder=folder)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)


def stop(server: Tree) -> None:
    """SIGTERM the front end (for TorchServe its JVM, which stops its worker and lets the
    launcher exit; the launcher would leave it running), then SIGKILL whatever is left."""
    tree = server.processes()
    front = [p for p in tree if server.role(p) == "JVM"] or tree[:1]
    for process in front:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    try:
        server.process.wait(nsmc.STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.process.terminate()
        try:
            server.process.wait(5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    _, alive = psutil.wait_procs(tree, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def save_log(server: Tree, logs: Path, lines: int = 200) -> None:
    (logs / f"{slug(server.name)}.log").write_text(nsmc.tail(server.log, lines) + "\n")


def torchserve_command(executable: Path, config: Path) -> list[str]:
    return [
        str(executable), "--start", "--foreground", "--ncs", "--disable-token-auth",
        "--ts-config", str(config),
    ]  # fmt: skip


def podium_has_ts_config() -> bool:
    done = subprocess.run(
        [nsmc.executable("podium"), "serve", "--help"], capture_output=True, text=True
    )
    return "--ts-config" in done.stdout


def podium_command(config: Path, store: Path, port: int, policy: str, ts_config: bool) -> list[str]:
    command = [nsmc.executable("podium"), "serve"]
    if ts_config:
        command += ["--ts-config", str(config)]
    else:
        command += [
            "--model-store", str(store), "--host", "127.0.0.1", "--port", str(port),
            "--management-port", "0",
        ]  # fmt: skip
    return [*command, "--batching", policy]


def fastapi_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bench.fastapi_torchserve_app:app", "--host",
        "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- load


def described(server: Tree) -> dict[str, Any]:
    """The model as the management API describes it: batch fields and workers."""
    if server.management is None:
        return {}
    headers = {}
    token = server.folder / "podium-token" if server.folder else None
    if token is not None and token.is_file():  # podium's management API always needs it
        headers["Authorization"] = f"Bearer {token.read_text().strip()}"
    url = f"http://127.0.0.1:{server.management}/models/{MODEL}"
    try:
        with nsmc.OPENER.open(urllib.request.Request(url, headers=headers), timeout=2) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        return {"status": error.code}
    except OSError as error:
        return {"error": str(error)}
    try:
        value = json.loads(body)
    except ValueError:
        return {"body": body.decode(errors="replace")[:400]}
    found: dict[str, Any] = {"batch": list(nsmc.batch_fields(value))}
    models = value if isinstance(value, list) else [value]
    workers = [
        str(worker.get("status"))
        for model in models
        if isinstance(model, dict)
        for worker in model.get("workers", [])
        if isinstance(worker, dict)
    ]
    if workers:
        found["workers"] = workers
    return found


def batch_counts(port: int) -> tuple[float, float]:
    """podium's cumulative ``podium_batch_size`` sum and count for the model (0s if none)."""
    status, body = nsmc.call(port, "/metrics")
    total = count = 0.0
    if status != 200:
        return total, count
    for line in body.decode(errors="replace").splitlines():
        if f'model="{MODEL}"' not in line:
            continue
        if line.startswith("podium_batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("podium_batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
    return total, count


def measure_all(server: Tree, connections: int, seconds: int) -> tuple[Load, dict[str, Any]]:
    """One measured run; at 64 connections RSS is sampled alongside. Also podium's batches."""
    before = batch_counts(server.port)
    samples: list[dict[str, float]] = []
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(measure, server, connections, seconds)
        while not running.done():
            if connections > 1:
                samples.append(memory(server))
            time.sleep(SAMPLE_EVERY)
        load = running.result()
    after = batch_counts(server.port)
    extra: dict[str, Any] = {}
    batches = after[1] - before[1]
    if batches:
        extra["batches"] = {"count": batches, "mean": (after[0] - before[0]) / batches}
    if samples:
        extra["rss_peak_mb"] = max(samples, key=lambda sample: sample["total"])
        extra["rss_samples"] = len(samples)
    return load, extra


def benchmark(server: Tree, seconds: int, warmup: int) -> tuple[list[Load], dict[str, Any]]:
    status, answer = predict(server.port)
    print(f"  {server.name}: {status} {answer.decode(errors='replace')}")
    info: dict[str, Any] = {"rss_idle_mb": memory(server), "model": described(server)}
    wrk(server.port, 64, warmup)  # warm-up, not recorded
    loads = []
    for connections in nsmc.CONCURRENCIES:
        load, extra = measure_all(server, connections, seconds)
        info[f"c{connections}"] = extra
        rss = extra.get("rss_peak_mb", {}).get("total")
        print(
            f"  {server.name} c{connections}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, "
            f"p99 {load.p99_ms:.2f} ms, errors {load.errors}"
            + (f", RSS {rss:.0f} MiB" if rss else "")
            + (f", batches {extra['batches']}" if "batches" in extra else "")
        )
        loads.append(load)
    return loads, info


def run_servers(
    artifacts: Path, args: argparse.Namespace, work: Path, logs: Path
) -> tuple[list[Load], dict[str, Any], dict[str, Any]]:
    loads: list[Load] = []
    info: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    ts_config = podium_has_ts_config()
    policies = ("adaptive", "fixed") if args.fixed else ("adaptive",)
    ts_env = {**ONE_THREAD, "LOG_LOCATION": "logs", "METRICS_LOCATION": "logs"}
    for case in CASES:
        folder = work / f"batch-{case.batch_size}"
        mar = archive(artifacts, case, folder)
        runs = [(torchserve_name(case), "adaptive")]
        runs += [(podium_name(case, policy), policy) for policy in policies]
        for index, (name, policy) in enumerate(runs):
            port = nsmc.free_port()
            config = config_properties(case, mar.parent, port, folder / f"{slug(name)}.properties")
            if index == 0:
                kind, env, manage = "torchserve", ts_env, management_port(config)
                argv = torchserve_command(args.torchserve, config)
            else:
                kind, env = "podium", ONE_THREAD
                manage = management_port(config) if ts_config else None
                argv = podium_command(config, mar.parent, port, policy, ts_config)
            commands[name] = " ".join(argv)
            with serving(name, kind, argv, port, work, env, manage) as server:
                try:
                    found, info[name] = benchmark(server, args.duration, args.warmup)
                    loads += found
                finally:
                    save_log(server, logs)
            (logs / f"{slug(name)}.properties").write_text(config.read_text())
    port = nsmc.free_port()
    env = {**ONE_THREAD, "TORCHSERVE_ARTIFACTS": str(artifacts)}
    argv = fastapi_command(port)
    commands[FASTAPI] = " ".join(argv)
    with serving(FASTAPI, "fastapi", argv, port, work, env) as server:
        try:
            found, info[FASTAPI] = benchmark(server, args.duration, args.warmup)
            loads += found
        finally:
            save_log(server, logs)
    return loads, info, commands


# ----------------------------------------------------------------------------- report


def rss(info: dict[str, Any], name: str) -> float | None:
    peak = info.get(name, {}).get("c64", {}).get("rss_peak_mb")
    return None if peak is None else float(peak["total"])


def ratios(baseline: dict[str, Any], loads: list[Load], info: dict[str, Any]) -> dict[str, Any]:
    """Per case: podium against TorchServe, both against the ceiling and against FastAPI."""
    found: dict[str, Any] = {}
    for case in CASES:
        ts, pod = torchserve_name(case), podium_name(case)
        ceiling = baseline["single_rps_ceiling" if case.batch_size == 1 else "batch32_rps_ceiling"]
        row: dict[str, Any] = {"target_speedup": case.target_speedup}
        for connections in nsmc.CONCURRENCIES:
            mine, theirs = find(loads, pod, connections), find(loads, ts, connections)
            fastapi = find(loads, FASTAPI, connections)
            if mine is None or theirs is None:
                continue
            row[f"rps_c{connections}"] = mine.rps / theirs.rps if theirs.rps else None
            row[f"p99_c{connections}"] = {"podium": mine.p99_ms, "torchserve": theirs.p99_ms}
            row[f"podium_of_ceiling_c{connections}"] = mine.rps / ceiling
            row[f"torchserve_of_ceiling_c{connections}"] = theirs.rps / ceiling
            if fastapi is not None and fastapi.rps:
                row[f"podium_vs_fastapi_c{connections}"] = mine.rps / fastapi.rps
                row[f"torchserve_vs_fastapi_c{connections}"] = theirs.rps / fastapi.rps
        mine_rss, theirs_rss = rss(info, pod), rss(info, ts)
        if mine_rss and theirs_rss:
            row["rss"] = {
                "podium": mine_rss,
                "torchserve": theirs_rss,
                "share": mine_rss / theirs_rss,
            }
        found[case.label] = row
    return found


def render_memory(info: dict[str, Any]) -> list[str]:
    lines = [
        "| server | RSS idle MiB | RSS peak at c64 MiB | by process (at the peak) |",
        "|---|---:|---:|---|",
    ]
    for name, found in info.items():
        idle = found.get("rss_idle_mb", {}).get("total", float("nan"))
        peak = found.get("c64", {}).get("rss_peak_mb", {})
        parts = ", ".join(f"{role} {mb:.0f}" for role, mb in peak.items() if role != "total")
        lines.append(f"| {name} | {idle:.0f} | {peak.get('total', float('nan')):.0f} | {parts} |")
    return lines


def render_ratios(found: dict[str, Any]) -> list[str]:
    labels = list(found)
    lines = [
        "| ratio | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]

    def row(title: str, cell: Callable[[dict[str, Any]], str]) -> None:
        cells = []
        for label in labels:
            try:
                cells.append(cell(found[label]))
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    row(
        "podium / TorchServe req/s, c64 (target ≥ 2.5x at batch 1, ≥ 2x at batch 32)",
        lambda r: f"**{r['rps_c64']:.2f}x** {verdict(r['rps_c64'] >= r['target_speedup'])}",
    )
    row("podium / TorchServe req/s, c1", lambda r: f"{r['rps_c1']:.2f}x")
    row(
        "p99 c64, podium vs TorchServe (target: lower)",
        lambda r: (
            f"{r['p99_c64']['podium']:.2f} vs {r['p99_c64']['torchserve']:.2f} ms "
            f"{verdict(r['p99_c64']['podium'] < r['p99_c64']['torchserve'])}"
        ),
    )
    row(
        "p99 c1, podium vs TorchServe",
        lambda r: f"{r['p99_c1']['podium']:.2f} vs {r['p99_c1']['torchserve']:.2f} ms",
    )
    row(
        "RSS, podium / TorchServe (target < 50%)",
        lambda r: (
            f"{r['rss']['podium']:.0f} / {r['rss']['torchserve']:.0f} MiB = "
            f"**{r['rss']['share']:.0%}** {verdict(r['rss']['share'] < TARGET_RSS_SHARE)}"
        ),
    )
    row("podium c64 / in-process ceiling", lambda r: f"{r['podium_of_ceiling_c64']:.0%}")
    row("TorchServe c64 / in-process ceiling", lambda r: f"{r['torchserve_of_ceiling_c64']:.0%}")
    row("podium / FastAPI req/s, c64", lambda r: f"{r['podium_vs_fastapi_c64']:.2f}x")
    row("podium / FastAPI req/s, c1", lambda r: f"{r['podium_vs_fastapi_c1']:.2f}x")
    row("TorchServe / FastAPI req/s, c64", lambda r: f"{r['torchserve_vs_fastapi_c64']:.2f}x")
    return lines  # fmt: skip


def render(report: dict[str, Any]) -> str:
    m, b = report["machine"], report["in_process"]
    lines = [
        "# TorchServe vs podium: the same .mar",
        "",
        f"`{report['command']}`",
        "",
        f"{m['cpu']}, {m['cores']} cores; each server's whole process tree pinned to core "
        f"{m['server_core']}, wrk (-t1) to core {m['client_core']}; {report['warmup']} s "
        f"warm-up at c64, then {report['duration']} s per run; Python {m['python']}, torch "
        f"{m['torch']}, TorchServe {m['torchserve']}, {m['java']}.",
        "",
        *nsmc.render_loads(report["loads"]),
        "",
        "Memory (whole process tree, MiB):",
        "",
        *render_memory(report["servers"]),
        "",
        f"In process ({b['loader']}, `{b['handler']}.handle`, core {nsmc.SERVER_CORE}, "
        f"torch threads {b['torch_threads']}):",
        "",
        f"- one request per call: {b['single_ms_mean']:.4f} ms mean, {b['single_ms_p50']:.4f} "
        f"ms p50 → ceiling {b['single_rps_ceiling']:,.0f} req/s",
        f"- 32 requests per call: {b['batch32_ms_per_request']:.4f} ms per request "
        f"→ ceiling {b['batch32_rps_ceiling']:,.0f} req/s",
        "",
        "Ratios (ceiling: one request per call at batch 1, 32 per call at batch 32):",
        "",
        *render_ratios(report["ratios"]),
        "",
        "Batching as each server reports it:",
        "",
    ]
    for name, found in report["servers"].items():
        model = found.get("model", {})
        batch = "; ".join(model.get("batch", [])) or "not reported"
        measured = ", ".join(
            f"c{c}: {found[f'c{c}']['batches']['count']:.0f} batches, mean "
            f"{found[f'c{c}']['batches']['mean']:.1f}"
            for c in nsmc.CONCURRENCIES
            if "batches" in found.get(f"c{c}", {})
        )
        lines.append(f"- {name}: {batch}" + (f"; measured {measured}" if measured else ""))
    lines += ["", "Commands:", ""]
    lines += [f"- {name}: `{command}`" for name, command in report["commands"].items()]
    return "\n".join(lines) + "\n"


def machine(torchserve: Path) -> dict[str, Any]:
    from importlib.metadata import version

    found = nsmc.machine()
    found["torch"] = version("torch")
    found["torch-model-archiver"] = version("torch-model-archiver")
    done = subprocess.run([str(torchserve), "--version"], capture_output=True, text=True)
    found["torchserve"] = done.stdout.strip().rsplit(" ", 1)[-1]
    java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    found["java"] = (java.stderr.splitlines() or ["java ?"])[0].replace('"', "")
    return found


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument(
        "--warmup", type=int, default=30, help="seconds of unmeasured load before each server"
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH / "out" / "torchserve", help="folder for results"
    )
    parser.add_argument(
        "--torchserve",
        type=Path,
        default=DEFAULT_TORCHSERVE if DEFAULT_TORCHSERVE.exists() else shutil.which("torchserve"),
        help=f"the torchserve command of its own venv (default {DEFAULT_TORCHSERVE})",
    )
    parser.add_argument("--fixed", action="store_true", help="also run podium's fixed policy")
    parser.add_argument("--baseline-only", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def check_machine(args: argparse.Namespace) -> None:
    if args.torchserve is None or not Path(args.torchserve).exists():
        raise SystemExit(
            "TorchServe is not installed. Install it outside podium's venv and pass its command:\n"
            "  python3 -m venv /work/tsvenv\n"
            "  /work/tsvenv/bin/pip install torch==2.13.0 torchserve==0.12.0 pyyaml\n"
            "  python bench/torchserve.py --torchserve /work/tsvenv/bin/torchserve"
        )
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SystemExit("TorchServe needs Java 17: java on PATH or JAVA_HOME")
    if not {nsmc.SERVER_CORE, nsmc.CLIENT_CORE} <= os.sched_getaffinity(0):
        raise SystemExit(f"needs cores {nsmc.CLIENT_CORE} and {nsmc.SERVER_CORE} (for taskset)")
    for tool in ("wrk", "taskset", "pgrep", "torch-model-archiver", "podium"):
        nsmc.executable(tool)


def write_lua(work: Path) -> Path:
    """bench/wrk_post.lua with a text/plain body instead of JSON."""
    lines = []
    for line in nsmc.LUA.read_text(encoding="utf-8").splitlines():
        if line.startswith("wrk.body"):
            line = f"wrk.body = '{TEXT}'"
        elif line.startswith('wrk.headers["Content-Type"]'):
            line = 'wrk.headers["Content-Type"] = "text/plain"'
        lines.append(line)
    path = work / "wrk_post_text.lua"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    args = parse_args()
    if args.baseline_only is not None:  # the fresh process in_process_baseline starts
        with tempfile.TemporaryDirectory(prefix="podium-bench-") as folder:
            found = time_handler(args.baseline_only, Path(folder), float(args.duration))
        print(json.dumps(found))
        return
    check_machine(args)
    args.torchserve = Path(args.torchserve)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as folder:
        work = Path(folder)
        nsmc.LUA = write_lua(work)
        print("training the TorchServe-migration example")
        artifacts = train(work)
        print("timing the handler in process")
        mar = archive(artifacts, CASES[0], work / "baseline")
        baseline = in_process_baseline(mar, work, seconds=min(5, args.duration))
        print(f"  {baseline}")
        print("benchmarking the servers")
        found = machine(args.torchserve)
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {nsmc.CLIENT_CORE})  # the RSS sampler stays off core 1
        try:
            loads, servers, commands = run_servers(artifacts, args, work, logs)
        finally:
            os.sched_setaffinity(0, cores)
    report = {
        "command": " ".join(["python", *[a for a in sys.argv if a]]),
        "duration": args.duration,
        "warmup": args.warmup,
        "machine": found,
        "in_process": baseline,
        "loads": loads,
        "servers": servers,
        "ratios": ratios(baseline, loads, servers),
        "commands": commands,
    }
    nsmc.write_report(render(report), report, args.out)


if __name__ == "__main__":
    main()
