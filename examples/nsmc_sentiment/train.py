"""Train the NSMC sentiment model: character n-grams and multinomial Naive Bayes.

    python examples/nsmc_sentiment/train.py --out model_out
    python examples/nsmc_sentiment/train.py --data ratings_train.txt --out model_out

Reads an NSMC-format TSV (``id<TAB>document<TAB>label``; the bundled synthetic sample by
default), cleans each review with the serving handler's own ``clean_text``, measures
accuracy on a stratified 20% holdout, refits on everything and writes ``model.joblib``
and ``example.json`` into the output folder.

Character n-grams within words (``char_wb``, 1 to 3) were chosen by measurement on the
sample: they tie word 1-2-grams on the holdout (0.94) and beat them in 10-fold
cross-validation (0.945 against 0.92). Korean glues particles and endings onto words, so
"재밌게", "재밌어요" and "재밌다" share character n-grams but no word.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import joblib
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "data" / "sample.tsv"
EXAMPLE_REQUEST = {"text": "정말 재밌게 잘봤습니다!"}
HOLDOUT = 0.2
SEED = 0
# Caps the model's size on the full 150k-review corpus; the sample has about 2,500 n-grams.
MAX_FEATURES = 100_000


def load_clean_text() -> Callable[[str], str]:
    """Return ``clean_text`` from handler.py, loaded by path so the two always agree."""
    spec = importlib.util.spec_from_file_location("nsmc_sentiment_handler", HERE / "handler.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'handler.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[str], str], module.clean_text)


def read_reviews(path: Path) -> tuple[list[str], list[int], int]:
    """Return the cleaned reviews, their labels, and how many rows were skipped.

    Rows with an empty document (the real corpus has a few), one that is empty once
    cleaned, or a label other than 0 or 1 are skipped.
    """
    clean_text = load_clean_text()
    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        if next(rows, None) != ["id", "document", "label"]:
            raise ValueError(f"{path}: expected the header id<TAB>document<TAB>label")
        for row in rows:
            text = clean_text(row[1]) if len(row) == 3 else ""
            if not text or row[2] not in ("0", "1"):
                skipped += 1
                continue
            texts.append(text)
            labels.append(int(row[2]))
    return texts, labels, skipped


def make_pipeline() -> Pipeline:
    """The untrained model: character n-gram counts into multinomial Naive Bayes."""
    vectorizer = CountVectorizer(analyzer="char_wb", ngram_range=(1, 3), max_features=MAX_FEATURES)
    return Pipeline([("vectorizer", vectorizer), ("classifier", MultinomialNB())])


def holdout_accuracy(texts: list[str], labels: list[int]) -> float:
    """Fit on a stratified 80% and return the accuracy on the other 20%."""
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=HOLDOUT, stratify=labels, random_state=SEED
    )
    return float(make_pipeline().fit(train_x, train_y).score(test_x, test_y))


def train(data: Path | None, out_dir: Path, report: Callable[[str], None] = print) -> Path:
    """Train on ``data`` (default: the bundled sample); return the path of model.joblib."""
    texts, labels, skipped = read_reviews(data or SAMPLE)
    report(f"read {len(texts)} reviews" + (f" (skipped {skipped})" if skipped else ""))
    if len(set(labels)) != 2:
        raise ValueError("the data needs both positive (1) and negative (0) reviews")
    report("fitting")
    report(f"holdout accuracy {holdout_accuracy(texts, labels):.2f}")
    pipeline = make_pipeline().fit(texts, labels)
    report(f"refit on all {len(texts)} reviews")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.joblib"
    joblib.dump(pipeline, model_path)
    example = json.dumps(EXAMPLE_REQUEST, ensure_ascii=False)
    (out_dir / "example.json").write_text(example + "\n", encoding="utf-8")
    report(f"wrote {model_path}")
    return model_path


def main() -> None:
    """Command line: ``train.py [--data FILE] --out DIR``."""
    parser = argparse.ArgumentParser(description="Train the NSMC sentiment model.")
    parser.add_argument("--data", type=Path, help="an NSMC-format TSV (default: the sample)")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.joblib")
    args = parser.parse_args()
    train(args.data, args.out)


if __name__ == "__main__":
    main()
