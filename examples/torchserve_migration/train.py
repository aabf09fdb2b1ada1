"""Train a small PyTorch sentiment classifier and save it the way TorchServe loads it.

    python examples/torchserve_migration/train.py
    python examples/torchserve_migration/train.py --data ratings_train.txt --out artifacts

Reads an NSMC-format TSV (``id<TAB>document<TAB>label``; the NSMC example's bundled
synthetic sample by default), holds out a stratified 20%, trains an ``EmbeddingBag`` (mean)
plus ``Linear`` classifier on the rest, prints the holdout accuracy, and writes into the
output folder (default ``artifacts/`` next to this file):

- ``model.pt``: the model as TorchScript, ``forward(ids, offsets) -> logits``; TorchServe's
  ``BaseHandler`` loads it with ``torch.jit.load``;
- ``vocab.json``: token → id, for ``tokenizer.encode_batch``;
- ``index_to_name.json``: class index → label, which ``BaseHandler`` reads into
  ``self.mapping``.

The saved model is the one measured: it never saw the holdout reviews, nor did its
vocabulary.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizer import PADDING_ID, build_vocabulary, encode, tokens
from torch import Tensor, nn
from torch.nn import functional

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "nsmc_sentiment" / "data" / "sample.tsv"
ARTIFACTS = HERE / "artifacts"
INDEX_TO_NAME = {"0": "negative", "1": "positive"}
SEED = 0
HOLDOUT = 0.2
EMBEDDING_DIM = 32
EPOCHS = 10
BATCH_SIZE = 16
LEARNING_RATE = 0.01


class ReviewClassifier(nn.Module):
    """Average the embeddings of a review's tokens, then score each class linearly."""

    def __init__(self, vocabulary_size: int, embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(
            vocabulary_size, embedding_dim, mode="mean", padding_idx=PADDING_ID
        )
        self.classifier = nn.Linear(embedding_dim, len(INDEX_TO_NAME))

    def forward(self, ids: Tensor, offsets: Tensor) -> Tensor:
        """Return the logits, one row per bag of ``ids`` starting at each of ``offsets``."""
        return self.classifier(self.embedding(ids, offsets))


def read_reviews(path: Path) -> tuple[list[str], list[int]]:
    """Return the reviews and their labels, skipping rows without text or a 0/1 label."""
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        if next(rows, None) != ["id", "document", "label"]:
            raise ValueError(f"{path}: expected the header id<TAB>document<TAB>label")
        for row in rows:
            if len(row) == 3 and tokens(row[1]) and row[2] in ("0", "1"):
                texts.append(row[1])
                labels.append(int(row[2]))
    return texts, labels


def holdout_split(labels: list[int]) -> tuple[list[int], list[int]]:
    """Return (training, holdout) row indices: ``HOLDOUT`` of each class, drawn with ``SEED``."""
    shuffle = random.Random(SEED).shuffle
    training: list[int] = []
    holdout: list[int] = []
    for label in sorted(set(labels)):
        rows = [i for i, found in enumerate(labels) if found == label]
        shuffle(rows)
        cut = round(len(rows) * HOLDOUT)
        holdout += rows[:cut]
        training += rows[cut:]
    return sorted(training), sorted(holdout)


def as_batch(bags: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Lay bags of ids end to end: the ``(ids, offsets)`` pair the model takes."""
    offsets = [0]
    for bag in bags[:-1]:
        offsets.append(offsets[-1] + len(bag))
    ids = [token for bag in bags for token in bag]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def fit(model: ReviewClassifier, bags: list[list[int]], labels: list[int]) -> None:
    """Train with Adam on shuffled mini-batches of ``BATCH_SIZE``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    order = list(range(len(bags)))
    shuffle = random.Random(SEED).shuffle
    model.train()
    for _ in range(EPOCHS):
        shuffle(order)
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            ids, offsets = as_batch([bags[i] for i in rows])
            loss = functional.cross_entropy(
                model(ids, offsets), torch.tensor([labels[i] for i in rows])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


def accuracy(model: ReviewClassifier, bags: list[list[int]], labels: list[int]) -> float:
    """The share of ``bags`` whose highest logit is their label."""
    with torch.inference_mode():
        predicted = model(*as_batch(bags)).argmax(dim=1)
    return float((predicted == torch.tensor(labels)).float().mean())


def save(model: ReviewClassifier, vocabulary: dict[str, int], out_dir: Path) -> Path:
    """Write model.pt (TorchScript), vocab.json and index_to_name.json; return model.pt."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.pt"
    # TorchScript is deprecated in favour of torch.export, but it is what TorchServe's
    # BaseHandler loads from a .pt serialized file, so the warning is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(model_path))
    for name, content in (("vocab.json", vocabulary), ("index_to_name.json", INDEX_TO_NAME)):
        text = json.dumps(content, ensure_ascii=False, indent=None if name == "vocab.json" else 2)
        (out_dir / name).write_text(text + "\n", encoding="utf-8")
    return model_path


def train(data: Path | None, out_dir: Path, report: Callable[[str], None] = print) -> Path:
    """Train on ``data`` (default: the NSMC sample) and save into ``out_dir``; return model.pt."""
    texts, labels = read_reviews(data or SAMPLE)
    if set(labels) != {0, 1}:
        raise ValueError("the data needs both positive (1) and negative (0) reviews")
    training, holdout = holdout_split(labels)
    report(f"read {len(texts)} reviews: {len(training)} to train, {len(holdout)} held out")
    vocabulary = build_vocabulary(texts[i] for i in training)
    report(f"vocabulary of {len(vocabulary)} tokens")
    torch.manual_seed(SEED)
    model = ReviewClassifier(len(vocabulary))
    bags = [encode(text, vocabulary) for text in texts]
    fit(model, [bags[i] for i in training], [labels[i] for i in training])
    held = accuracy(model, [bags[i] for i in holdout], [labels[i] for i in holdout])
    report(f"holdout accuracy {held:.2f}")
    model_path = save(model, vocabulary, out_dir)
    report(f"wrote {model_path}, vocab.json and index_to_name.json")
    return model_path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``train.py [--data FILE] [--out DIR]``."""
    parser = argparse.ArgumentParser(description="Train the TorchServe-migration sentiment model.")
    parser.add_argument("--data", type=Path, help="an NSMC-format TSV (default: the NSMC sample)")
    parser.add_argument(
        "--out", type=Path, default=ARTIFACTS, help=f"output folder (default: {ARTIFACTS})"
    )
    args = parser.parse_args(argv)
    train(args.data, args.out)


if __name__ == "__main__":
    main()
