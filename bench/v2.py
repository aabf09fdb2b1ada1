"""The Open Inference Protocol (KServe V2) against podium's native route, on two models.

    python bench/v2.py [--duration 8] [--connections 64] [--mlserver PATH] [--out bench/out]

For a 1x64 FP32 digits request (the ONNX example, with labels) and for one NSMC review,
one run measures, in order:

1. **In-process ceiling**: the archive's handler loaded as a worker loads it, ``handle``
   timed on one request (pinned to core 1, one thread); and the worker's ``Runner.run`` on
   the same request as native JSON and as V2 (codec decode + handler + encode).
2. **podium** (``podium serve --grpc-port``, pinned to core 1 with its workers) on every
   protocol: ``POST /predictions`` with JSON, V2 REST with JSON, V2 REST with the binary
   tensor extension (both directions), and V2 gRPC (``ModelInfer``, raw contents).
3. **plain FastAPI** serving the same model (``bench/fastapi_app.py``,
   ``bench/fastapi_digits_app.py``): one request per call, no batching.
4. **MLServer** (a peer, when ``--mlserver`` names its ``mlserver`` executable): the same
   model files behind custom runtimes (``bench/mlserver_runtime.py``), V2 REST JSON and
   binary and gRPC, pinned to core 1 like podium.

Every load comes from one generator, ``h2load`` (nghttp2; HTTP/1.1 for REST, HTTP/2 for
gRPC), pinned to core 0 with ``--connections`` connections and one request in flight on
each, so the protocols are compared on equal terms. Server CPU time per request is read
from ``/proc``. Ratios are against podium's ``/predictions`` JSON, the in-process ceiling
and plain FastAPI measured in the same run. The markdown table and the raw JSON are
printed and written to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nsmc
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CORE, CLIENT_CORE = nsmc.SERVER_CORE, nsmc.CLIENT_CORE
REVIEW = nsmc.REQUEST["text"]
LABELS = [str(digit) for digit in range(10)]


@dataclass
class Request:
    """One protocol's request for one model, as h2load sends it."""

    protocol: str
    path: str
    body: bytes
    headers: dict[str, str]
    grpc: bool = False


@dataclass
class Result:
    model: str
    server: str
    protocol: str
    rps: float
    mean_ms: float
    failed: int
    cpu_us_per_request: float
    cpu_by_role: dict[str, float]
    """Server CPU µs per request by process role (front end, workers)."""


# ----------------------------------------------------------------------------- requests


def digits_row() -> np.ndarray:
    from sklearn.datasets import load_digits

    row: np.ndarray = load_digits().data[-1].astype(np.float32).reshape(1, 64)
    return row


def v2_json(name: str, datatype: str, shape: list[int], data: list[Any]) -> bytes:
    tensor = {"name": name, "datatype": datatype, "shape": shape, "data": data}
    return json.dumps({"inputs": [tensor]}, ensure_ascii=False).encode()


def v2_binary(name: str, datatype: str, shape: list[int], raw: bytes) -> tuple[bytes, str]:
    tensor = {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    return header.encode() + raw, str(len(header.encode()))


def grpc_frame(model: str, name: str, datatype: str, shape: list[int], raw: bytes) -> bytes:
    """A gRPC message as it goes on the wire: flag, length, serialized ModelInferRequest."""
    from podium.protocols.v2.proto import grpc_service_pb2 as pb

    message = pb.ModelInferRequest(
        model_name=model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)],
        raw_input_contents=[raw],
    ).SerializeToString()
    return b"\0" + len(message).to_bytes(4, "big") + message


def requests_for(model: str, native: bytes, name: str, datatype: str, value: Any) -> list[Request]:
    """Every protocol's request for one input tensor ``value`` (a numpy array)."""
    from podium.protocols.v2.answers import tensor
    from podium.protocols.v2.tensors import to_raw

    built = tensor(name, value)
    raw = to_raw(built)
    shape = list(built.shape)
    data = [e.decode() if isinstance(e, bytes) else e for e in built.data.ravel().tolist()]
    binary, length = v2_binary(name, datatype, shape, raw)
    infer = f"/v2/models/{model}/infer"
    json_type = {"content-type": "application/json"}
    return [
        Request("/predictions JSON", f"/predictions/{model}", native, json_type),
        Request("V2 REST JSON", infer, v2_json(name, datatype, shape, data), json_type),
        Request(
            "V2 REST binary",
            infer,
            binary,
            {"content-type": "application/octet-stream", "inference-header-content-length": length},
        ),
        Request(
            "V2 gRPC",
            "/inference.GRPCInferenceService/ModelInfer",
            grpc_frame(model, name, datatype, shape, raw),
            {"content-type": "application/grpc", "te": "trailers"},
            grpc=True,
        ),
    ]


# ----------------------------------------------------------------------------- load


def h2load(
    port: int, request: Request, connections: int, seconds: int, work: Path
) -> dict[str, Any]:
    """Run h2load pinned to the client core; parse its summary."""
    body = work / f"body-{abs(hash(request.body))}"
    body.write_bytes(request.body)
    command = [
        "taskset", "-c", str(CLIENT_CORE), "h2load", "-c", str(connections), "-m", "1",
        "-D", str(seconds), "--warm-up-time", "1", "-d", str(body),
    ]  # fmt: skip
    if not request.grpc:
        command.append("--h1")
    for key, value in request.headers.items():
        command += ["-H", f"{key}: {value}"]
    command.append(f"http://127.0.0.1:{port}{request.path}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    text = done.stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored",
        text,
    )
    latency = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if done.returncode != 0 or rps is None or counts is None or latency is None:
        raise RuntimeError(f"h2load failed ({done.returncode}):\n{text}\n{done.stderr}")
    return {
        "rps": float(rps.group(1)),
        "done": int(counts.group(2)),
        "failed": int(counts.group(4)) + int(counts.group(5)),
        "mean_ms": milliseconds(latency.group(3)),
    }


def milliseconds(value: str) -> float:
    """h2load's "1.23ms", "850us" or "1.02s" in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if found is None:
        raise ValueError(f"unexpected h2load time {value!r}")
    return float(found.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[found.group(2)]


def measure(
    server: nsmc.Server,
    model: str,
    request: Request,
    port: int,
    args: argparse.Namespace,
    work: Path,
) -> Result:
    roles = server.roles()
    before = nsmc.role_cpu(roles)
    found = h2load(port, request, args.connections, args.duration, work)
    after = nsmc.role_cpu(roles)
    # h2load's warm-up second is not counted in "done": CPU per request is a slight overestimate.
    done = max(1, found["done"])
    by_role = {role: round((after[role] - before[role]) * 1e6 / done, 1) for role in roles}
    cpu = sum(by_role.values())
    result = Result(
        model,
        server.name,
        request.protocol,
        found["rps"],
        found["mean_ms"],
        found["failed"],
        cpu,
        by_role,
    )
    print(
        f"  {server.name} {model} {request.protocol}: {result.rps:,.0f} req/s, "
        f"mean {result.mean_ms:.2f} ms, {cpu:.0f} µs CPU/request {by_role}, "
        f"failed {result.failed}"
    )
    return result


def check(port: int, request: Request) -> None:
    """One real request before measuring: h2load counts any 2xx (and gRPC errors) as done."""
    if request.grpc:
        import grpc

        from podium.protocols.v2.proto import grpc_service_pb2 as pb

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                request.path,
                request_serializer=lambda raw: raw,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            answer = call(request.body[5:], timeout=10)
            print(f"    gRPC answer: {[o.name for o in answer.outputs]}")
        return
    status, body = post(port, request)
    if status != 200:
        raise RuntimeError(f"{request.protocol} {request.path}: {status} {body[:300]!r}")


def post(port: int, request: Request) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{request.path}", request.body, request.headers
    )
    try:
        with nsmc.OPENER.open(call, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ----------------------------------------------------------------------------- servers


@contextlib.contextmanager
def serving(
    name: str,
    command: Callable[[int], list[str]],
    logs: Path,
    env: dict[str, str],
    ready: Callable[[int], bool],
) -> Iterator[tuple[nsmc.Server, int]]:
    """Start ``command(port)`` on the server core; yield it once ``ready(port)``."""
    port = nsmc.free_port()
    log = logs / f"{nsmc.slug(name)}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *command(port)],
            cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = nsmc.Server(name, process, port, log)
    try:
        deadline = time.monotonic() + nsmc.READY_TIMEOUT
        while not ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{nsmc.tail(log)}")
            time.sleep(0.2)
        yield server, port
    finally:
        nsmc.stop(process, server.children())


def ping(path: str) -> Callable[[int], bool]:
    return lambda port: nsmc.call(port, path, timeout=1.0)[0] == 200


def in_process(archives: dict[str, Path], work: Path, seconds: float) -> dict[str, Any]:
    """Per model: handle() on one request, and the worker's run() on it as JSON and as V2."""
    from podium.archive import unpack
    from podium.backends.local import wire
    from podium.backends.local.worker import load
    from podium.protocols.v2.rest import decode_request

    found: dict[str, Any] = {}
    for model, (archive, native, v2_body) in archives.items():
        model_dir = work / f"unpacked-{model}"
        unpack(archive, model_dir)
        runner = load(wire.Load(str(model_dir), 0, False))
        value = json.loads(native)
        found[model] = time_runner(runner, value, decode_request(v2_body, None), seconds)
        print(f"  in-process {model}: {found[model]}")
    return found


def time_runner(runner: Any, value: Any, v2: Any, seconds: float) -> dict[str, float]:
    """Median µs of handle() on one request, and of the worker's run() as JSON and as V2."""
    with nsmc.pinned(SERVER_CORE):
        handle = nsmc.time_calls(lambda: runner.handler.handle([value], runner.context), seconds)
        as_json = nsmc.time_calls(lambda: runner.run([("json", value)]), seconds)
        as_v2 = nsmc.time_calls(lambda: runner.run([("v2", v2)]), seconds)
    return {
        "handle_us": 1000 * statistics.median(handle),
        "run_json_us": 1000 * statistics.median(as_json),
        "run_v2_us": 1000 * statistics.median(as_v2),
    }


# ----------------------------------------------------------------------------- main


def build(work: Path) -> dict[str, Any]:
    """Train and archive both models; the archives, model files and requests."""
    sys.path.insert(0, str(ROOT / "examples" / "digits_onnx"))
    import train as digits_train

    from podium.archive import Manifest, pack

    store = work / "store"
    paths = digits_train.train(work / "digits", report=lambda line: print(f"  digits: {line}"))
    onnx = paths["onnx"]
    manifest = Manifest(
        name="digits", handler="onnx", model_file=onnx.name, labels=LABELS,
        options={"softmax": True, "threads": 1},
    )  # fmt: skip
    digits_archive = pack(manifest, {onnx.name: onnx}, store)
    nsmc_archive, joblib_file = nsmc.build_model(work)
    row = digits_row()
    texts = np.array([REVIEW.encode()], dtype=np.object_)
    return {
        "store": nsmc_archive.parent,
        "onnx": onnx,
        "joblib": joblib_file,
        "models": {
            "digits": (digits_archive, json.dumps(row[0].tolist()).encode(), "x", "FP32", row),
            nsmc.MODEL: (
                nsmc_archive,
                json.dumps(nsmc.REQUEST, ensure_ascii=False).encode(),
                "text",
                "BYTES",
                texts,
            ),
        },
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    built = build(work)
    models = built["models"]
    requests = {
        model: requests_for(model, native, name, datatype, value)
        for model, (_, native, name, datatype, value) in models.items()
    }
    print("in-process ceiling")
    baseline = in_process(
        {m: (archive, native, requests[m][1].body) for m, (archive, native, *_) in models.items()},
        work,
        args.baseline_seconds,
    )
    logs = work / "logs"
    logs.mkdir()
    results: list[Result] = []
    grpc_port = nsmc.free_port()

    def podium_command(port: int) -> list[str]:
        return [
            *nsmc.podium_command(built["store"], port, "adaptive"), "--grpc-port", str(grpc_port),
        ]  # fmt: skip

    print("podium")
    with serving("podium", podium_command, logs, nsmc.ONE_THREAD, ping("/v2/health/ready")) as (
        server,
        port,
    ):
        for model, protocols in requests.items():
            for request in protocols:
                target = grpc_port if request.grpc else port
                check(target, request)
                results.append(measure(server, model, request, target, args, work))

    fastapi = {
        "digits": ("bench.fastapi_digits_app:app", {"DIGITS_MODEL": str(built["onnx"])}),
        nsmc.MODEL: ("bench.fastapi_app:app", {"NSMC_MODEL": str(built["joblib"])}),
    }
    for model, (app, env) in fastapi.items():

        def command(port: int, app: str = app) -> list[str]:
            return [
                sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            ]  # fmt: skip

        print(f"plain FastAPI ({model})")
        with serving(
            f"fastapi-{model}", command, logs, {**nsmc.ONE_THREAD, **env}, ping("/ping")
        ) as (server, port):
            request = requests[model][0]
            check(port, request)
            results.append(measure(server, model, request, port, args, work))

    if args.mlserver:
        results += mlserver(args, built, requests, work, logs)
    return {"in_process": baseline, "results": [asdict(r) for r in results]}


def mlserver(
    args: argparse.Namespace,
    built: dict[str, Any],
    requests: dict[str, list[Request]],
    work: Path,
    logs: Path,
) -> list[Result]:
    folder = work / "mlserver"
    http_port, grpc_port, metrics_port = (nsmc.free_port() for _ in range(3))
    files = {
        "digits": ("DigitsRuntime", built["onnx"]),
        nsmc.MODEL: ("NsmcRuntime", built["joblib"]),
    }
    for model, (runtime, uri) in files.items():
        (folder / model).mkdir(parents=True)
        (folder / model / "model-settings.json").write_text(json.dumps({
            "name": model, "implementation": f"mlserver_runtime.{runtime}",
            "parameters": {"uri": str(uri)},
        }))  # fmt: skip
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
        "metrics_port": metrics_port, "debug": False,
    }))  # fmt: skip
    env = {
        **nsmc.ONE_THREAD,
        "PYTHONPATH": str(BENCH),
        "NSMC_HANDLER": str(ROOT / "examples" / "nsmc_sentiment" / "handler.py"),
    }
    results = []
    print("MLServer")
    command = lambda port: [args.mlserver, "start", str(folder)]  # noqa: E731
    ready = lambda _: nsmc.call(http_port, "/v2/health/ready", timeout=1.0)[0] == 200  # noqa: E731
    with serving("mlserver", command, logs, env, ready) as (server, _):
        for model, protocols in requests.items():
            for request in protocols[1:]:
                target = grpc_port if request.grpc else http_port
                try:
                    check(target, request)
                except RuntimeError as error:  # a protocol feature the peer lacks
                    print(f"  mlserver {model} {request.protocol}: skipped ({error})")
                    continue
                results.append(measure(server, model, request, target, args, work))
    return results


def render(report: dict[str, Any]) -> str:
    lines = [
        "| model | server | protocol | req/s | mean ms | CPU µs/req "
        "| x podium /predictions | x FastAPI | x in-process ceiling |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    results = [Result(**r) for r in report["results"]]
    for r in results:
        native = next(
            x
            for x in results
            if x.model == r.model and x.server == "podium" and x.protocol.startswith("/predictions")
        )
        plain = next(
            (x for x in results if x.model == r.model and x.server.startswith("fastapi")), None
        )
        ceiling = 1e6 / report["in_process"][r.model]["handle_us"]
        lines.append(
            f"| {r.model} | {r.server} | {r.protocol} | {r.rps:,.0f} | {r.mean_ms:.2f} | "
            f"{r.cpu_us_per_request:.0f} | {r.rps / native.rps:.2f} | "
            f"{r.rps / plain.rps if plain else float('nan'):.2f} | {r.rps / ceiling:.2f} |"
        )
    lines.append("")
    for model, timing in report["in_process"].items():
        lines.append(
            f"In-process {model}: handle {timing['handle_us']:.0f} µs, worker run as JSON "
            f"{timing['run_json_us']:.0f} µs, as V2 {timing['run_v2_us']:.0f} µs (medians)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--baseline-seconds", type=float, default=2.0)
    parser.add_argument("--mlserver", help="the mlserver executable (a peer run when given)")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two cores: the server on core 1, h2load on core 0")
    with tempfile.TemporaryDirectory(prefix="podium-bench-v2-") as folder:
        report = run(args, Path(folder))
    report["command"] = " ".join(sys.argv)
    text = render(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "v2.md").write_text(text + "\n")
    (args.out / "v2.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
