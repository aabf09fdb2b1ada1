"""Which built-in handler serves a model, the options it needs, and whether it can load.

``podium archive`` asks before it packs anything, so that an archive that could never load
is refused in one line instead of failing in every worker. Everything is told from names,
sizes and a transformers ``config.json``: nothing is imported and no model is loaded.
``stated_classes`` tells how many classes a model has where this is written down (a
transformers ``config.json``, a torch ``signature``), for ``--labels`` to be checked against.

    model.onnx                                   → onnx
    model.pt2 / .pt / .pth / .torchscript        → torch
    model.joblib / .pkl / .pickle / .skops       → sklearn
    a folder with config.json                    → transformers (options model_dir, task)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from podium.errors import ArchiveError

MODEL_HANDLERS = ("onnx", "sklearn", "torch", "transformers")
"""The built-in handlers that load a model of one framework (``torchserve`` runs code)."""

FRAMEWORK_BY_SUFFIX = {
    ".onnx": "onnx",
    ".pt2": "torch",
    ".pt": "torch",
    ".pth": "torch",
    ".torchscript": "torch",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".skops": "sklearn",
}
"""Suffixes that name a framework by themselves (``.bin`` and ``.safetensors`` do not)."""

JOBLIB_COMPRESSED = (".z", ".gz", ".bz2", ".xz", ".lzma")
MODEL_SUFFIXES = {
    "onnx": (".onnx",),
    # joblib also reads plain pickles (.sav) and its compressed files (model.joblib.gz).
    "sklearn": (".joblib", ".pkl", ".pickle", ".skops", ".sav", *JOBLIB_COMPRESSED),
}
"""What the onnx and sklearn handlers load; torch asks its own ``model_format``."""

WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def detect_handler(model: Path, handler: str | None = None) -> tuple[str, dict[str, Any]]:
    """The built-in handler for a model file or folder, and the options it needs.

    With ``handler`` named (one of ``MODEL_HANDLERS``), the options it needs, once the
    model is not clearly another framework's: ``--handler onnx --model m.joblib`` is
    refused. A transformers folder gives ``model_dir`` and ``task`` (text-classification
    when its architecture has a classification head, else feature-extraction).
    """
    if not model.exists():
        raise ArchiveError(f"{model}: no such file or folder")
    clearly = _framework(model)
    if handler is None:
        handler = clearly or ("transformers" if model.is_dir() else None)
        if handler is None:
            raise ArchiveError(f"cannot tell the framework of {model.name}; name a --handler")
    elif clearly is not None and clearly != handler:
        raise ArchiveError(
            f"{model.name} is a {clearly} model, not {handler}: "
            f"name --handler {clearly}, or leave --handler out"
        )
    if handler != "transformers":
        return handler, {}
    if not model.is_dir():
        raise ArchiveError(
            f"the transformers handler loads a model folder (config.json, weights, "
            f"tokenizer), not {model.name}"
        )
    architectures = read_config(model / "config.json").get("architectures") or []
    classifies = any("SequenceClassification" in str(a) for a in architectures)
    task = "text-classification" if classifies else "feature-extraction"
    return handler, {"model_dir": model.name, "task": task}


def _framework(model: Path) -> str | None:
    if model.is_dir():
        return "transformers" if (model / "config.json").is_file() else None
    return FRAMEWORK_BY_SUFFIX.get(model.suffix.lower())


def read_config(path: Path) -> dict[str, Any]:
    """A transformers ``config.json``, which must be a JSON object."""
    try:
        config = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ArchiveError(
            f"{path.parent.name}: a model folder must hold a transformers config.json"
        ) from None
    except orjson.JSONDecodeError:
        config = None
    if not isinstance(config, dict):
        raise ArchiveError(f"{path.parent.name}/config.json is not a JSON object")
    return config


def check_model(
    handler: str, model: Path | None, options: Mapping[str, Any], files: Mapping[str, Path]
) -> None:
    """Refuse (``ArchiveError``) an archive whose built-in ``handler`` (one of
    ``MODEL_HANDLERS``) could not load its model. ``files`` maps each name in the archive
    to the file it is packed from; ``options`` are the manifest's."""
    if handler == "transformers":
        _check_model_folder(options, files)
        return
    if model is None:
        raise ArchiveError(f"the {handler} handler needs a model file: name it with --model")
    if model.is_dir():
        raise ArchiveError(f"the {handler} handler loads a model file, not the folder {model.name}")
    if handler == "torch":
        _check_torch_model(model, options, files)
    elif not model.name.lower().endswith(MODEL_SUFFIXES[handler]):
        suffixes = ", ".join(MODEL_SUFFIXES[handler])
        raise ArchiveError(f"the {handler} handler loads {suffixes} files, not {model.name}")
    if model.stat().st_size == 0:
        raise ArchiveError(f"{model.name} is empty")


def _check_torch_model(model: Path, options: Mapping[str, Any], files: Mapping[str, Path]) -> None:
    from podium.handlers.torch import model_format

    try:
        form = model_format(model, options)
    except ValueError as error:
        raise ArchiveError(str(error)) from None
    if form != "eager":
        return
    file_name, colon, _ = str(options.get("model_class") or "").partition(":")
    if not (file_name and colon):
        raise ArchiveError(f"{model.name}: an eager model needs --option model_class=FILE.py:Class")
    if file_name not in files:
        raise ArchiveError(
            f"the model_class file {file_name} is not in the archive: add it with --extra-files"
        )


def _check_model_folder(options: Mapping[str, Any], files: Mapping[str, Path]) -> None:
    """The transformers handler's folder (option ``model_dir``, default the archive's
    root) must hold a config.json, weights and a tokenizer."""
    folder = PurePosixPath(str(options.get("model_dir", ".")))
    if folder.is_absolute() or ".." in folder.parts:
        raise ArchiveError(f"model_dir {str(folder)!r} is outside the archive")
    prefix = "" if folder == PurePosixPath(".") else f"{folder}/"
    names = {name.removeprefix(prefix) for name in files if name.startswith(prefix)}
    where = f"the model folder {str(folder)!r} (option model_dir)"
    if "config.json" not in names:
        raise ArchiveError(f"no config.json in {where}: archive one with --model or --extra-files")
    read_config(files[f"{prefix}config.json"])
    if names.isdisjoint(WEIGHTS):
        raise ArchiveError(f"no PyTorch weights in {where}: {' or '.join(WEIGHTS[::2])}")
    if names.isdisjoint(TOKENIZER_FILES):
        raise ArchiveError(f"no tokenizer files in {where}: {', '.join(TOKENIZER_FILES[:3])}, ...")


def stated_classes(
    handler: str, options: Mapping[str, Any], files: Mapping[str, Path]
) -> int | None:
    """How many classes a model has, where its files or options say without loading it:
    a text-classification folder's ``config.json`` (``id2label``, else ``num_labels``), or
    the width of a torch ``signature`` output (option ``output``, else the first)."""
    if handler == "transformers" and options.get("task", "text-classification") == (
        "text-classification"
    ):
        folder = PurePosixPath(str(options.get("model_dir", ".")))
        prefix = "" if folder == PurePosixPath(".") else f"{folder}/"
        if f"{prefix}config.json" not in files:
            return None
        config = read_config(files[f"{prefix}config.json"])
        id2label, count = config.get("id2label"), config.get("num_labels")
        if isinstance(id2label, dict) and id2label:
            return len(id2label)
        return count if isinstance(count, int) and count > 0 else None
    if handler == "torch":
        return _signature_width(options)
    return None


def _signature_width(options: Mapping[str, Any]) -> int | None:
    from podium.handlers.specs import read_signature

    try:
        outputs = read_signature(options.get("signature"), "outputs")
    except ValueError as error:
        raise ArchiveError(f"option signature: {error}") from None
    if not outputs:
        return None
    wanted = options.get("output")
    chosen = next((spec for spec in outputs if spec.name == str(wanted)), None)
    if wanted is not None and chosen is None:
        raise ArchiveError(f'option "output": the signature has no output "{wanted}"')
    shape = (chosen or outputs[0]).shape
    return shape[1] if shape is not None and len(shape) == 2 and shape[1] else None
