"""Benchmark podium on the transformer sentiment example against its in-process ceiling and
plain FastAPI.

    python bench/transformer.py [--duration 10] [--out bench/out/transformer] [--fixed]

The same conventions as ``bench/nsmc.py``, whose helpers it imports (servers pinned to
core 1, ``wrk -t1`` pinned to core 0 POSTing ``{"text": "정말 재밌게 잘봤습니다!"}`` with
``bench/wrk_post.lua``, server CPU per request from ``/proc``). One run measures:

1. **In-process ceiling.** The example is trained and archived
   (``examples/transformer_sentiment/train.py``), unpacked and loaded the way a worker
   does (``podium.backends.local.worker.load``, one torch thread) and timed on core 1: the handler's
   ``inference`` on batches of 32 texts (the archive's batch size, the batch podium
   forms at 64 connections) in a loop, and ``handle`` on one request and on 32.
2. **podium** (``podium serve`` on core 1: front end and one worker share it), with the
   ``adaptive`` policy (and ``fixed`` with ``--fixed``), at 1 and 64 connections. The
   ``podium_batch_size`` histogram of ``GET /metrics`` is read before and after each run,
   so each run reports the batches it formed.
3. **plain FastAPI** (``bench/fastapi_transformer_app.py``): one tokenize + forward per
   request in a sync endpoint, under uvicorn on core 1.

The target is podium at 64 connections ≥ 90% of the batch-32 in-process ceiling.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import nsmc
from nsmc import Load, Server, measure, pinned, serving, time_calls, wrk

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE = ROOT / "examples" / "transformer_sentiment"
MODEL = "transformer_sentiment"
BATCH = 32
TARGET_OF_CEILING = 0.9
FASTAPI = "FastAPI (uvicorn, sync def, one forward per request)"
ONE_THREAD = {**nsmc.ONE_THREAD, "TORCH_THREADS": "1", "HF_HUB_OFFLINE": "1"}

# bench/nsmc.py's helpers read the route from its module globals: point them at this model.
nsmc.MODEL = MODEL
nsmc.ROUTE = f"/predictions/{MODEL}"
nsmc.READY_TIMEOUT = 180.0


def load_train() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transformer_train", EXAMPLE / "train.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {EXAMPLE / 'train.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(work: Path) -> tuple[Path, Path]:
    """Train and archive the example; return the archive and the build folder."""
    build_dir = work / "build"
    archive = load_train().archive(
        work / "store", build_dir, report=lambda line: print(f"  train: {line}")
    )
    return archive, build_dir


def in_process_baseline(archive: Path, work: Path, seconds: int) -> dict[str, Any]:
    """Time the handler in a fresh process on the server core (see ``time_handler``).

    A fresh process, because this one trained the head with torch on every core: its
    thread pool, once started, slows one-thread timings on a single core by up to 2x.
    """
    return nsmc.run_baseline(__file__, archive, work, seconds)


def time_handler(archive: Path, work: Path, seconds: float) -> dict[str, Any]:
    """Time ``inference`` on batches of 32, and ``handle`` on 1 and on 32 requests."""
    from podium.archive import unpack
    from podium.backends.local import wire
    from podium.backends.local.worker import load

    model_dir = work / "unpacked"
    unpack(archive, model_dir)
    os.environ["PODIUM_THREADS"] = "1"  # what a worker alone on one core is given
    runner = load(wire.Load(str(model_dir), 0, False))
    handler, context = runner.handler, runner.context
    request = dict(nsmc.REQUEST)
    texts = [request["text"]] * BATCH
    batch = [dict(request) for _ in range(BATCH)]
    with pinned(nsmc.SERVER_CORE):
        inference = time_calls(lambda: handler.inference(texts), seconds, warmup=3)
        handled = time_calls(lambda: handler.handle(batch, context), seconds, warmup=3)
        single = time_calls(lambda: handler.handle([dict(request)], context), seconds, warmup=20)
    import torch

    inference_ms = statistics.fmean(inference)
    return {
        "torch_threads": torch.get_num_threads(),
        "inference32_ms_per_call": inference_ms,
        "inference32_rps_ceiling": BATCH * 1000 / inference_ms,
        "handle32_ms_per_call": statistics.fmean(handled),
        "handle32_rps_ceiling": BATCH * 1000 / statistics.fmean(handled),
        "single_ms_p50": statistics.median(single),
        "single_rps_ceiling": 1000 / statistics.fmean(single),
        "calls": {"inference32": len(inference), "handle32": len(handled), "single": len(single)},
    }


# ----------------------------------------------------------------------------- batches


def batch_histogram(port: int) -> dict[str, float]:
    """The model's cumulative ``podium_batch_size`` buckets (``le`` → count), plus sum."""
    status, body = nsmc.call(port, "/metrics")
    if status != 200:
        return {}
    found: dict[str, float] = {}
    for line in body.decode(errors="replace").splitlines():
        if not line.startswith("podium_batch_size") or f'model="{MODEL}"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        bucket = re.search(r'le="([^"]+)"', line)
        if line.startswith("podium_batch_size_bucket") and bucket:
            found[bucket.group(1)] = value
        elif line.startswith("podium_batch_size_sum"):
            found["sum"] = value
        elif line.startswith("podium_batch_size_count"):
            found["count"] = value
    return found


def batches_between(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Batches formed between two snapshots: count, mean size, and count per size range."""
    if not after:
        return {}
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    bounds = [key for key in after if key not in ("sum", "count")]
    bounds.sort(key=lambda key: float(key))
    ranges: dict[str, int] = {}
    previous, low = 0.0, 1
    for key in bounds:
        count = int(delta[key] - previous)
        previous = delta[key]
        high = key if key == "+Inf" else str(int(float(key)))
        if count:
            ranges[high if str(low) == high else f"{low}-{high}"] = count
        if key != "+Inf":
            low = int(float(key)) + 1
    count = int(delta.get("count", 0))
    return {
        "batches": count,
        "mean": delta.get("sum", 0.0) / count if count else 0.0,
        "by_size": ranges,
    }


# ----------------------------------------------------------------------------- servers


def podium_name(policy: str) -> str:
    return "podium (adaptive)" if policy == "adaptive" else "podium (fixed: 5 ms, batch 32)"


def fastapi_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "bench.fastapi_transformer_app:app", "--host",
        "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log",
    ]  # fmt: skip


def benchmark(server: Server, seconds: int) -> tuple[list[Load], dict[int, dict[str, Any]]]:
    """Warm up, then one measured run per concurrency, with the batches each one formed."""
    status, answer = nsmc.predict(server.port)
    print(f"  {server.name}: {status} {answer.decode(errors='replace')}")
    wrk(server.port, 64, min(3, seconds))  # warm-up, not recorded
    loads: list[Load] = []
    batches: dict[int, dict[str, Any]] = {}
    for connections in nsmc.CONCURRENCIES:
        before = batch_histogram(server.port)
        load = measure(server, connections, seconds)
        batches[connections] = batches_between(before, batch_histogram(server.port))
        print(
            f"  {server.name} c{connections}: {load.rps:,.1f} req/s, p50 {load.p50_ms:.1f} ms, "
            f"p99 {load.p99_ms:.1f} ms, batches {batches[connections]}"
        )
        loads.append(load)
    return loads, batches


def run_servers(
    archive: Path, build_dir: Path, args: argparse.Namespace, logs: Path
) -> tuple[list[Load], dict[str, dict[int, dict[str, Any]]]]:
    loads: list[Load] = []
    batches: dict[str, dict[int, dict[str, Any]]] = {}
    for policy in ("adaptive", "fixed") if args.fixed else ("adaptive",):
        name = podium_name(policy)
        command = functools.partial(nsmc.podium_command, archive.parent, policy=policy)
        with serving(name, command, logs, {"HF_HUB_OFFLINE": "1"}) as server:
            found, batches[name] = benchmark(server, args.duration)
            loads += found
    env = {**ONE_THREAD, "TRANSFORMER_BUILD": str(build_dir)}
    with serving(FASTAPI, fastapi_command, logs, env) as server:
        loads += benchmark(server, args.duration)[0]
    return loads, batches


# ----------------------------------------------------------------------------- report


def ratios(baseline: dict[str, Any], loads: list[Load]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for load in loads:
        if load.server == FASTAPI:
            continue
        row = found.setdefault(load.server, {})
        theirs = nsmc.find(loads, FASTAPI, load.connections)
        if theirs is not None and theirs.rps > 0:
            row[f"vs_fastapi_c{load.connections}"] = load.rps / theirs.rps
        if load.connections == 64:
            row["c64_of_inference32_ceiling"] = load.rps / baseline["inference32_rps_ceiling"]
            row["c64_of_handle32_ceiling"] = load.rps / baseline["handle32_rps_ceiling"]
        if load.connections == 1:
            row["c1_p50_overhead_ms"] = load.p50_ms - baseline["single_ms_p50"]
    return found


def render(report: dict[str, Any]) -> str:
    m, b = report["machine"], report["in_process"]
    lines = [
        "# Transformer sentiment: podium against in-process and plain FastAPI",
        "",
        f"`{report['command']}`",
        "",
        f"{m['cpu']}, {m['cores']} cores; servers pinned to core {nsmc.SERVER_CORE}, wrk "
        f"(-t1) to core {nsmc.CLIENT_CORE}; {report['duration']} s per run; "
        f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}.",
        "",
        *nsmc.render_loads(report["loads"]),
        "",
        f"In process (core {nsmc.SERVER_CORE}, torch threads {b['torch_threads']}):",
        "",
        f"- `inference` on 32 texts: {b['inference32_ms_per_call']:.1f} ms per call "
        f"→ ceiling {b['inference32_rps_ceiling']:,.1f} req/s",
        f"- `handle` on 32 requests: {b['handle32_ms_per_call']:.1f} ms per call "
        f"→ {b['handle32_rps_ceiling']:,.1f} req/s",
        f"- `handle` on 1 request: {b['single_ms_p50']:.2f} ms p50 "
        f"→ {b['single_rps_ceiling']:,.1f} req/s",
        "",
        "Ratios:",
        "",
    ]
    for name, r in report["ratios"].items():
        share = r.get("c64_of_inference32_ceiling")
        if share is not None:
            verdict = "**met**" if share >= TARGET_OF_CEILING else "**not met**"
            lines.append(
                f"- {name} c64 / in-process `inference` ceiling (batch 32): **{share:.0%}** "
                f"(target ≥ {TARGET_OF_CEILING:.0%}: {verdict}); "
                f"{r['c64_of_handle32_ceiling']:.0%} of the `handle` ceiling"
            )
        for c in nsmc.CONCURRENCIES:
            if f"vs_fastapi_c{c}" in r:
                lines.append(f"- {name} / FastAPI req/s at c{c}: **{r[f'vs_fastapi_c{c}']:.2f}x**")
        if "c1_p50_overhead_ms" in r:
            lines.append(f"- {name} p50 at c1 - in-process p50: {r['c1_p50_overhead_ms']:+.2f} ms")
    lines += ["", "Batches formed during each measured run (`podium_batch_size`):", ""]
    for name, runs in report["batches"].items():
        for connections, found in runs.items():
            sizes = ", ".join(
                f"{size}: {count}" for size, count in found.get("by_size", {}).items()
            )
            lines.append(
                f"- {name} c{connections}: {found.get('batches', 0)} batches, mean "
                f"{found.get('mean', 0.0):.1f}; by size {sizes or 'none'}"
            )
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    found = nsmc.machine()
    found["torch"] = version("torch")
    found["transformers"] = version("transformers")
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--out", type=Path, default=BENCH / "out" / "transformer", help="folder for results"
    )
    parser.add_argument("--fixed", action="store_true", help="also run the fixed policy")
    parser.add_argument("--baseline-only", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.baseline_only is not None:  # the fresh process in_process_baseline starts
        with tempfile.TemporaryDirectory(prefix="podium-bench-") as folder:
            found = time_handler(args.baseline_only, Path(folder), float(args.duration))
        print(json.dumps(found))
        return
    if not {nsmc.SERVER_CORE, nsmc.CLIENT_CORE} <= os.sched_getaffinity(0):
        raise SystemExit(f"needs cores {nsmc.CLIENT_CORE} and {nsmc.SERVER_CORE} (for taskset)")
    for tool in ("wrk", "taskset", "pgrep"):
        nsmc.executable(tool)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as folder:
        work = Path(folder)
        print("training and archiving the transformer example")
        archive, build_dir = build_model(work)
        print("timing the handler in process")
        baseline = in_process_baseline(archive, work, seconds=min(5, args.duration))
        print(f"  {baseline}")
        print("benchmarking the servers")
        loads, batches = run_servers(archive, build_dir, args, logs)
    report = {
        "command": " ".join(["python", *[a for a in sys.argv if a]]),
        "duration": args.duration,
        "machine": machine(),
        "in_process": baseline,
        "loads": loads,
        "ratios": ratios(baseline, loads),
        "batches": batches,
    }
    nsmc.write_report(render(report), report, args.out)


if __name__ == "__main__":
    main()
