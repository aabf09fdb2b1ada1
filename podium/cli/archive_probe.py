"""The part of ``podium archive``'s checks that runs the archive's code, in its own process.

Importing a handler and loading a pickled model run code, which must neither crash nor
pollute the command, so ``podium.cli.archive_checks`` stages the archive's files as a worker
sees them unpacked and runs ``python -m podium.cli.archive_probe REQUEST RESULT``. REQUEST
(JSON) names that folder and the stages to run, in this order; RESULT gets
``{"problem": LINE}``, ``null`` when every stage passed:

    import    the handler file compiles and imports, and holds the handler the manifest
              names (a ``Handler`` subclass or ``handle()``; for ``torchserve``, a class or
              function as TorchServe finds it)
    classes   the model's classes, where it tells them (sklearn ``classes_``, an onnx
              output's static width), against ``labels``
    run       load as a worker does (``podium.backends.local.worker.load``: initialize and
              warm-up), then the manifest's ``example`` through the handler, which must
              answer a status below 400
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from podium.archive import MANIFEST_PATH, Manifest

MAR_MANIFEST = "MAR-INF/MANIFEST.json"


class Problem(Exception):
    """Why the archive is refused, in one line."""


def labels_problem(labels: Sequence[str] | None, classes: int | None) -> str | None:
    """The refusal for ``labels`` that do not name ``classes`` classes, if they do not."""
    if not labels or classes is None or len(labels) == classes:
        return None
    names = "name" if len(labels) == 1 else "names"
    return f"--labels has {len(labels)} {names} but the model has {classes} classes"


def main(argv: Sequence[str] | None = None) -> int:
    request_path, result_path = (sys.argv[1:] if argv is None else argv)[:2]
    request = orjson.loads(Path(request_path).read_bytes())
    problem: str | None = None
    try:
        probe(Path(request["model_dir"]), request["stages"])
    except Problem as error:
        problem = str(error)
    Path(result_path).write_bytes(orjson.dumps({"problem": problem}))
    return 0


def probe(model_dir: Path, stages: Collection[str]) -> None:
    """Run ``stages`` on the staged archive in ``model_dir``; ``Problem`` at the first that
    fails."""
    manifest = Manifest.model_validate_json((model_dir / MANIFEST_PATH).read_bytes())
    if "import" in stages:
        check_import(manifest, model_dir)
    if "classes" in stages:
        problem = labels_problem(manifest.labels, model_classes(manifest, model_dir))
        if problem:
            raise Problem(problem)
    if "run" in stages:
        run_example(manifest, model_dir)


def check_import(manifest: Manifest, model_dir: Path) -> None:
    """The handler file compiles, imports and holds the handler, found as a worker finds it.

    The modules it imported from the archive are forgotten after, so that ``run`` imports
    them afresh under the names a worker gives them.
    """
    before = set(sys.modules)
    try:
        if manifest.handler == "torchserve":
            _check_torchserve(manifest, model_dir)
        else:
            from podium.handlers import load_handler

            _compile(model_dir, manifest.handler.partition(":")[0])
            _guarded(lambda: load_handler(manifest, model_dir), model_dir)
    finally:
        root = model_dir.resolve()
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None)
            if file and Path(file).resolve().is_relative_to(root):
                del sys.modules[name]


def _check_torchserve(manifest: Manifest, model_dir: Path) -> None:
    from podium.compat.torchserve.handler import load_entry_point, use_torchserve_modules

    spec = str(manifest.options.get("handler") or _mar_handler(model_dir))
    if not spec:
        raise Problem("the torchserve handler needs --option handler=FILE.py")
    module = spec.partition(":")[0].removesuffix(".py").split("/")[-1]
    _compile(model_dir, f"{module}.py")
    # As TorchServeHandler.initialize: in the model's folder, with that folder importable.
    use_torchserve_modules()
    os.chdir(model_dir)
    sys.path.insert(0, str(model_dir))
    _guarded(lambda: load_entry_point(spec, model_dir), model_dir)


def _mar_handler(model_dir: Path) -> str:
    path = model_dir / MAR_MANIFEST
    if not path.is_file():
        return ""
    described = orjson.loads(path.read_bytes())
    return str(described.get("model", {}).get("handler") or "")


def _compile(model_dir: Path, file_name: str) -> None:
    """A syntax error, with its line (a file not in the archive is the loader's to report)."""
    path = model_dir / file_name
    if not path.is_file():
        return
    try:
        compile(path.read_bytes(), file_name, "exec")
    except SyntaxError as error:
        raise Problem(
            f"{file_name} line {error.lineno}: {type(error).__name__}: {error.msg}"
        ) from None
    except ValueError as error:  # null bytes
        raise Problem(f"{file_name}: {error}") from None


def _guarded(call: Any, model_dir: Path, prefix: str = "") -> Any:
    try:
        return call()
    except (Exception, SystemExit) as error:
        raise Problem(prefix + describe(error, model_dir)) from None


def describe(error: BaseException, model_dir: Path) -> str:
    """One line for an error: where in the archive's files it was raised, if it was, its
    type, and the first line of its message. The loaders' own ``ImportError`` (no handler
    class, not in the archive) is its message alone."""
    root = model_dir.resolve()
    where = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if path.is_absolute() and path.resolve().is_relative_to(root):
            where = f"{path.resolve().relative_to(root).as_posix()} line {frame.lineno}: "
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if not where and type(error) is ImportError:
        return first
    return f"{where}{type(error).__name__}: {first}".rstrip(": ")


def model_classes(manifest: Manifest, model_dir: Path) -> int | None:
    """How many classes the model says it has, where it says (sklearn, onnx)."""
    if manifest.model_file is None:
        return None
    model_file = model_dir / manifest.model_file
    prefix = f"{manifest.model_file} did not load: "
    if manifest.handler == "sklearn":
        from podium.handlers.sklearn import load_estimator

        estimator = _guarded(lambda: load_estimator(model_file), model_dir, prefix)
        classes = getattr(estimator, "classes_", None)
        return None if classes is None else len(classes)
    if manifest.handler == "onnx":
        return _onnx_classes(model_file, manifest.options, model_dir, prefix)
    return None


def _onnx_classes(
    model_file: Path, options: Mapping[str, Any], model_dir: Path, prefix: str
) -> int | None:
    """The static width of the output the labelled answer reads (option ``output``, else
    the first), when it is a tensor of one row per instance."""
    try:
        import onnxruntime as ort
    except ImportError:  # the server may have it; nothing to tell here
        return None
    session = _guarded(
        lambda: ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"]),
        model_dir,
        prefix,
    )
    outputs = session.get_outputs()
    wanted = options.get("output")
    if wanted is None:
        chosen = outputs[0] if outputs else None
    else:
        chosen = next((node for node in outputs if node.name == str(wanted)), None)
        if chosen is None:
            raise Problem(f'option "output": the model has no output "{wanted}"')
    shape = getattr(chosen, "shape", None)
    if chosen is None or not str(chosen.type).startswith("tensor(") or not shape:
        return None
    width = shape[-1]
    return width if len(shape) == 2 and isinstance(width, int) and width > 0 else None


def run_example(manifest: Manifest, model_dir: Path) -> None:
    """Load as a worker does, then answer the example (if there is one) through the handler."""
    from podium.backends.local import wire
    from podium.backends.local.worker import load
    from podium.protocols import NATIVE

    message = wire.Load(str(model_dir), worker_id=0, debug=False, quiet=True)
    runner = _guarded(lambda: load(message), model_dir, "the model did not load: ")
    if manifest.example is None:
        return
    status, _, body, _ = runner.run_all([(NATIVE, manifest.example)])[0]
    if status >= 400:
        raise Problem(f"--example failed with status {status}: {_message(body)}")


def _message(body: bytes) -> str:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    text = str(answer["message"]) if isinstance(answer, dict) and "message" in answer else ""
    text = text or body[:200].decode("utf-8", "replace")
    return text.strip().splitlines()[0] if text.strip() else "(no message)"


if __name__ == "__main__":
    sys.exit(main())
