"""Profiles for ``bench/nsmc.py --profile``: commands to run, and summaries of what they wrote.

Three views of podium under load, each from its own run:

- **py-spy** (Python frames, ``--nonblocking``), at 64 and at 1 connection: self time by
  innermost Python function, per process. C code is charged to the Python function that
  called it; time in uvloop's and httptools' C code, which has no Python caller, shows as
  the event loop's run frame. py-spy samples wall time, so the process being profiled
  gets the server core to itself for that run (see ``alone_on_server_core`` in nsmc.py).
- **perf record** on the server core (native, ``cpu-clock``, kernel included), at 64 and
  at 1 connection, with both processes sharing the core as benchmarked: how busy the core
  is and who has it, then self time by library and by native symbol. This is the view
  that sees the garbage collector, the interpreter, pickle, llhttp and the kernel's TCP
  stack. Samples are a fixed CPU period apart, so counts convert to µs per request.
- **perf stat** on the ``syscalls:sys_enter_*`` tracepoints, per process, at 64
  connections: system calls per request (counted, not sampled) and, from the worker's
  sends, the mean batch size.

Each view perturbs the server somewhat (perf stat most); read shares and per-request costs
from them, and throughput from the plain runs.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY_RATE = 1000
PERF_PERIOD_NS = 250_000  # one cpu-clock sample per 250 µs of CPU time
TOP = 25

Stack = tuple[tuple[str, str], ...]

FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Frames under every stack (process start, asyncio.run). When nothing else is on the
# stack the process is in C code under the event loop: uvloop, httptools, system calls.
ROOT_FRAMES = ("<module>", "runpy.py", "click/", "podium/cli/", "podium/frontends/rest/run.py",
               "uvicorn/main.py", "uvicorn/server.py", "uvicorn/_compat.py",
               "asyncio/runners.py")  # fmt: skip
EVENT_LOOP_C = "event loop C code (uvloop, httptools, socket system calls)"
# First match walking from the leaf towards the root names a py-spy sample's category.
PYTHON_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("podium wire (IPC framing, pickle)", ("podium/backends/local/wire.py", "pickle")),
    ("orjson (JSON)", ("orjson",)),
    ("uvicorn HTTP protocol (httptools_impl)", ("uvicorn/",)),
    ("podium inference endpoint", ("podium/frontends/rest/",)),
    ("podium dataplane", ("podium/core/dataplane.py",)),
    ("podium batcher", ("podium/backends/local/batcher.py",)),
    ("podium errors", ("podium/errors.py",)),
    ("podium supervisor (worker protocol)", ("podium/backends/local/supervisor.py",)),
    ("podium worker loop", ("podium/backends/local/worker.py",)),
    ("text cleaning (re, unicodedata)", ("re/", "unicodedata")),
    ("model handler (pre/postprocess)", ("handler.py",)),
    ("scikit-learn / scipy / numpy", ("sklearn/", "scipy/", "numpy/")),
    ("asyncio (futures, tasks, events)", ("asyncio/", "_weakrefset")),
    ("starlette / FastAPI / pydantic / anyio", ("starlette/", "fastapi/", "pydantic", "anyio/")),
)
# (label, symbol prefixes, library substrings) for perf samples; first match wins.
NATIVE_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("CPython cyclic GC", ("gc_collect", "visit_decref", "visit_reachable", "move_unreachable",
                           "subtract_refs", "update_refs", "deduce_unreachable"), ()),
    ("kernel (system calls, TCP/Unix sockets, scheduler)", (), ("[kernel",)),
    ("regex engine (re)", ("sre_", "_sre"), ("_sre",)),
    ("pickle", (), ("_pickle",)),
    ("orjson", (), ("orjson",)),
    ("httptools / llhttp", (), ("httptools", "parser.cpython")),
    ("uvloop", (), ("loop.cpython", "uvloop")),
    ("asyncio C (futures, tasks)", (), ("_asyncio",)),
    ("numpy / scipy / scikit-learn native", (), ("numpy", "scipy", "sklearn", "openblas",
                                                  "_multiarray", "_sparsetools")),
    ("CPython interpreter (eval, objects, malloc)", (), ("libpython",)),
    ("libc (memcpy, malloc, syscall wrappers)", (), ("libc.so", "libm.so")),
)  # fmt: skip


# ----------------------------------------------------------------------------- commands


def py_spy_command(py_spy: str, pid: int, seconds: int, raw: Path) -> list[str]:
    return [
        py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--nonblocking",
        "--rate", str(PY_SPY_RATE), "--format", "raw", "--output", str(raw),
    ]  # fmt: skip


def perf_record_command(core: int, seconds: int, data: Path) -> list[str]:
    return [
        "perf", "record", "--quiet", "-e", "cpu-clock", "-c", str(PERF_PERIOD_NS),
        "-C", str(core), "-o", str(data), "--", "sleep", str(seconds),
    ]  # fmt: skip


def perf_report_command(data: Path) -> list[str]:
    return [
        "perf", "report", "-i", str(data), "--stdio", "--sort", "pid,dso,sym",
        "-F", "sample,pid,dso,sym", "-t", "|",
    ]  # fmt: skip


def perf_stat_command(pid: int, seconds: int, out: Path) -> list[str]:
    return [
        "perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_*", "-p", str(pid),
        "-o", str(out), "--", "sleep", str(seconds),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- py-spy


def split_frame(frame: str) -> tuple[str, str]:
    """``name (file:line)`` → (name, file)."""
    match = FRAME.match(frame)
    return (match["name"], match["file"]) if match else (frame, "")


def read_stacks(path: Path) -> Counter[Stack]:
    """py-spy's raw (collapsed) output: ``frame;frame;...;leaf COUNT`` per line."""
    stacks: Counter[Stack] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(split_frame(frame) for frame in stack.split(";"))] += int(count)
    return stacks


def is_root(name: str, file: str) -> bool:
    where = f"{file} {name}"
    return any(root in where for root in ROOT_FRAMES)


def python_category(stack: Stack) -> str:
    if is_root(*stack[-1]):
        return EVENT_LOOP_C
    for name, file in reversed(stack):
        if is_root(name, file):
            continue
        for label, patterns in PYTHON_CATEGORIES:
            if any(pattern in file for pattern in patterns):
                return label
    return "other"


def python_function(stack: Stack) -> str:
    name, file = stack[-1]
    return EVENT_LOOP_C if is_root(name, file) else f"{name} ({file})"


def summarise_python(stacks: Counter[Stack], cpu_us: float) -> dict[str, Any]:
    """Shares of the sampled (non-idle) time, and µs/request given the CPU per request."""
    total = sum(stacks.values()) or 1
    categories: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for stack, count in stacks.items():
        categories[python_category(stack)] += count
        functions[python_function(stack)] += count

    def rows(counter: Counter[str], top: int) -> list[tuple[str, float, float]]:
        return [(k, n / total * cpu_us, n / total) for k, n in counter.most_common(top)]

    return {
        "samples": total,
        "cpu_us_per_request": cpu_us,
        "categories": rows(categories, len(categories)),
        "functions": rows(functions, TOP),
    }


# ----------------------------------------------------------------------------- perf record


def read_perf_report(text: str) -> Counter[tuple[int, str, str]]:
    """``perf report -t '|'`` lines → samples by (pid, library, symbol)."""
    samples: Counter[tuple[int, str, str]] = Counter()
    for line in text.splitlines():
        parts = [part.strip() for part in line.split("|", 3)]
        if line.startswith("#") or len(parts) != 4 or not parts[0].isdigit():
            continue
        count, process, dso, symbol = parts
        pid = int(process.split(":", 1)[0]) if process[:1].isdigit() else -1
        samples[(pid, dso, re.sub(r"^\[[.k]\] ", "", symbol))] += int(count)
    return samples


def native_group(dso: str, symbol: str) -> str:
    for label, prefixes, libraries in NATIVE_GROUPS:
        if symbol.startswith(prefixes) if prefixes else any(lib in dso for lib in libraries):
            return label
    return Path(dso).name or "unknown"


def summarise_native(
    samples: Counter[tuple[int, str, str]], roles: dict[str, list[int]], rps: float, window: int
) -> dict[str, Any]:
    """The core's busy time by process, then each process's by library group and symbol.

    This VM's cpu-clock does not sample an idle core, so the samples are its busy time.
    """
    us_per_sample = PERF_PERIOD_NS / 1000
    requests = round(rps * window)
    role_of = {pid: role for role, pids in roles.items() for pid in pids} | {0: "idle"}
    core: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = {role: Counter() for role in roles}
    symbols: dict[str, Counter[str]] = {role: Counter() for role in roles}
    for (pid, dso, symbol), count in samples.items():
        role = role_of.get(pid, "other processes")
        core[role] += count
        if role in roles:
            groups[role][native_group(dso, symbol)] += count
            symbols[role][f"{symbol} ({Path(dso).name or dso})"] += count
    total = sum(core.values()) or 1
    per_request = us_per_sample / max(1, requests)

    def rows(counter: Counter[str], top: int) -> list[tuple[str, float, float]]:
        whole = sum(counter.values()) or 1
        return [(k, n * per_request, n / whole) for k, n in counter.most_common(top)]

    return {
        "samples": total,
        "busy": total * us_per_sample / (window * 1e6),
        "core": [(role, n * per_request, n / total) for role, n in core.most_common()],
        "groups": {role: rows(counter, len(counter)) for role, counter in groups.items()},
        "symbols": {role: rows(counter, TOP) for role, counter in symbols.items()},
    }


# ----------------------------------------------------------------------------- perf stat


def read_syscalls(path: Path) -> Counter[str]:
    """``perf stat -x ,`` output → calls by system call name."""
    calls: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit() and "sys_enter_" in fields[2]:
            calls[fields[2].split("sys_enter_", 1)[1]] += int(fields[0])
    return calls


def summarise_syscalls(calls: dict[str, Counter[str]], requests: int) -> dict[str, Any]:
    per_request = {
        role: {name: n / max(1, requests) for name, n in counter.most_common() if n}
        for role, counter in calls.items()
    }
    worker_sends = sum(
        calls.get("worker", Counter())[name] for name in ("sendto", "sendmsg", "write")
    )
    return {
        "per_request": per_request,
        "mean_batch_size": requests / worker_sends if worker_sends else None,
    }


# ----------------------------------------------------------------------------- markdown


def table(rows: list[tuple[str, float, float]], what: str) -> list[str]:
    lines = [f"| µs/request | share | {what} |", "|---:|---:|---|"]
    return lines + [f"| {us:.1f} | {share:.1%} | `{name}` |" for name, us, share in rows]


def render_python(found: dict[str, Any]) -> list[str]:
    lines = [
        f"### py-spy: Python self time, {found['connections']} connection(s) "
        f"({PY_SPY_RATE} Hz, --nonblocking)",
        "",
        "One run per process, with the other server process moved to the client core so that "
        "a sample means CPU time, not time spent preempted. Shares are of the process's "
        "non-idle samples; µs/request = share x its CPU time per request in that run (from "
        "/proc). C code is charged to its Python caller.",
    ]
    for role, s in found.items():
        if role == "connections":
            continue
        lines += ["", f"**{role}** ({s['rps']:,.0f} req/s): {s['samples']} samples, "
                      f"{s['cpu_us_per_request']:.1f} µs CPU per request.", ""]  # fmt: skip
        lines += table(s["categories"], "category (innermost recognised frame)")
        lines += ["", *table(s["functions"], f"top {TOP} functions by self time")]
    return lines


def render_native(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"### perf record: native self time on the server core, {summary['connections']} "
        f"connection(s) ({summary['rps']:,.0f} req/s; cpu-clock, one sample per "
        f"{PERF_PERIOD_NS // 1000} µs)",
        "",
        f"The server core was busy {summary['busy']:.0%} of the window.",
        "",
        *table(summary["core"], "who has the server core (share of busy time)"),
    ]
    for role in summary["groups"]:
        lines += ["", f"**{role}**:", "", *table(summary["groups"][role], "library")]
        lines += ["", *table(summary["symbols"][role], f"top {TOP} native symbols")]
    return lines


def render_syscalls(summary: dict[str, Any]) -> list[str]:
    roles = list(summary["per_request"])
    names = sorted(
        {name for calls in summary["per_request"].values() for name in calls},
        key=lambda name: -sum(calls.get(name, 0) for calls in summary["per_request"].values()),
    )
    lines = [
        f"### perf stat: system calls per request, 64 connections ({summary['rps']:,.0f} req/s)",
        "",
        "| system call | " + " | ".join(roles) + " |",
        "|---|" + "---:|" * len(roles),
    ]
    for name in names[:15]:
        cells = [f"{summary['per_request'][role].get(name, 0):.3f}" for role in roles]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if summary["mean_batch_size"]:
        lines += [
            "",
            f"Mean batch size (requests / worker sends): {summary['mean_batch_size']:.1f}",
        ]
    return lines
