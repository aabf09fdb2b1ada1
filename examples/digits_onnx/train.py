"""Train the digits network and write it in every form the built-in handlers serve.

    python examples/digits_onnx/train.py --out build/digits

scikit-learn's bundled digits (``load_digits``: 1,797 images of 8x8 pixels valued 0 to
16, ten classes) train a small MLP (64 → 64 → 10, ``model.py``) with a fixed seed; the
accuracy on a stratified 20% holdout is reported. The output folder then holds

    model.onnx              for the ``onnx`` handler (dynamic batch axis)
    model.torchscript.pt    TorchScript, for the ``torch`` handler
    model.pt2               a torch.export program, for the ``torch`` handler
    model.safetensors       the weights, with model.py, for the ``torch`` handler's eager path
    model.py                the network's class
    example.json            one request: {"inputs": [64 pixel values]}
    digit.png               one holdout digit as an 8x8 grayscale PNG
    digit.raw               the same digit as 64 raw bytes (one per pixel)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
HOLDOUT = 0.2
EPOCHS = 40
BATCH = 64
LABELS = [str(digit) for digit in range(10)]
INPUT_NAME = "x"
OUTPUT_NAME = "logits"
SIGNATURE: dict[str, Any] = {
    "inputs": {INPUT_NAME: {"dtype": "float32", "shape": [None, 64]}},
    "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": [None, 10]}},
}
"""The manifest ``signature`` for the torch archives (the onnx handler reads the model's)."""
IMAGE = {"width": 8, "height": 8, "mode": "L", "scale": 16 / 255}
"""The handler option ``image``: PNG/JPEG bodies become 8x8 grayscale, 0-255 → 0-16."""


def load_model_module() -> ModuleType:
    """Import model.py by path (the worker imports it from the archive the same way)."""
    spec = importlib.util.spec_from_file_location("digits_onnx_model", HERE / "model.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'model.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(out_dir: Path, report: Callable[[str], object] = print) -> dict[str, Path]:
    """Train, report holdout accuracy, and write every artifact; returns name → path."""
    import torch

    torch.manual_seed(SEED)
    # A model this small trains fastest on one thread; more only contend with each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(out_dir, report)
    finally:
        torch.set_num_threads(threads)


def _train(out_dir: Path, report: Callable[[str], object]) -> dict[str, Path]:
    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, target = load_digits(return_X_y=True)
    features = features.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=HOLDOUT, random_state=SEED, stratify=target
    )
    report(f"read {len(features)} digits ({len(x_train)} train, {len(x_test)} holdout)")

    model = load_model_module().DigitsNet(hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), BATCH):
            index = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), labels[index])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        predicted = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    accuracy = float((predicted == y_test).mean())
    report(f"holdout accuracy {accuracy:.4f}")

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "onnx": out_dir / "model.onnx",
        "torchscript": out_dir / "model.torchscript.pt",
        "export": out_dir / "model.pt2",
        "safetensors": out_dir / "model.safetensors",
        "model_class": out_dir / "model.py",
        "example": out_dir / "example.json",
        "png": out_dir / "digit.png",
        "raw": out_dir / "digit.raw",
    }
    sample = torch.from_numpy(x_test[:2])
    batch = torch.export.Dim("batch")
    # The exporters warn about their own internals; none of it concerns this model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, sample, paths["onnx"])
        torch.jit.script(model).save(str(paths["torchscript"]))
        program = torch.export.export(model, (sample,), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, paths["export"])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths["safetensors"])
    shutil.copyfile(HERE / "model.py", paths["model_class"])

    digit = x_test[0]
    paths["example"].write_text(json.dumps({"inputs": digit.astype(int).tolist()}) + "\n")
    pixels = np.rint(digit.reshape(8, 8) * 255 / 16).astype(np.uint8)
    Image.fromarray(pixels).save(paths["png"])
    paths["raw"].write_bytes(pixels.tobytes())
    report(f"wrote {', '.join(path.name for path in paths.values())} to {out_dir}")
    return paths


def export_onnx(model: Any, sample: Any, path: Path) -> None:
    """ONNX with a dynamic batch axis: the torch.export-based exporter, else the legacy one."""
    import torch

    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    try:
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            external_data=False,
            verbose=False,
            **names,
        )
    except Exception:
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
            **names,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/digits"), help="output folder")
    args = parser.parse_args(argv)
    train(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
