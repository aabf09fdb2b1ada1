"""``podium demo``: train the bundled NSMC sentiment example, archive it, serve it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import podium
from podium.archive import Manifest, pack

EXAMPLE = "nsmc_sentiment"
LABELS = ["negative", "positive"]


def example_dir() -> Path:
    """The example's folder: the source checkout's, else the copy inside the wheel."""
    package = Path(podium.__file__).resolve().parent
    for candidate in (package.parent / "examples" / EXAMPLE, package / "_examples" / EXAMPLE):
        if (candidate / "train.py").is_file():
            return candidate
    raise FileNotFoundError(f"the {EXAMPLE} example is not installed")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"podium_demo_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(
    store: Path, build_dir: Path, report: Callable[[str], None], data: Path | None = None
) -> Path:
    """Train the example into ``build_dir`` and archive it into ``store``."""
    source = example_dir()
    model_file: Path = _load(source / "train.py").train(data, build_dir, report=report)
    example = (build_dir / "example.json").read_text(encoding="utf-8")
    manifest = Manifest(
        name=EXAMPLE,
        version="1.0",
        handler="handler.py:NsmcHandler",
        model_file=model_file.name,
        labels=LABELS,
        example=podium_json(example),
        signature={
            "input": {"text": "string | list[string]"},
            "output": {"label": "negative | positive", "confidence": "float"},
        },
    )
    files = {"handler.py": source / "handler.py", model_file.name: model_file}
    report("archiving")
    return pack(manifest, files, store)


def podium_json(text: str) -> object:
    import orjson

    return orjson.loads(text)
