"""Built-in ``transformers`` handler: a Hugging Face model from a folder inside the archive.

The archive carries the model folder as extra files (``config.json``, the tokenizer files,
``model.safetensors``...); nothing is fetched from the hub (``HF_HUB_OFFLINE=1``,
``local_files_only``). Each request is one text or a list of texts; the answer mirrors it:

    "great film"                       → {"label": "positive", "confidence": 0.98, ...}
    ["great film", "dull"]             → [{...}, {...}]
    {"text": ...}, {"inputs": ...}     → the same, wrapped in an object
    raw UTF-8 body                     → one text

Manifest ``options`` (all optional):

    model_dir       folder of the model inside the archive (default ".")
    task            "text-classification" (default) or "feature-extraction"
    max_length      longest tokenized input; longer ones are truncated (default 256)
    truncation      truncate to max_length (default true); false answers 400 instead
    pooling         "mean" (default) or "cls", for feature-extraction
    normalize       L2-normalise embeddings (default false)
    threads         torch intra-op threads (default: the worker's share, context.threads)
    device          "cpu", "cuda", "cuda:0"... (default: context.device)
    token_budget    most padded tokens in one forward pass (default 8192)
    max_texts       most texts in one request (default 256)

text-classification answers ``label``, ``confidence`` and ``probabilities`` (labels from the
manifest's ``labels``, else the model config's ``id2label``); feature-extraction answers
``embedding``.

Batching for real DL cost: the whole batch is tokenized once without padding, sorted by
length and cut into sub-batches, each padded only to its own longest text. A sub-batch
ends when its padded size would pass ``token_budget`` or when more than half of it would
be padding, so one long review does not make thirty short ones pay for its length.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from podium.errors import InvalidInput
from podium.handler import Context, Handler
from podium.handlers import regroup

INPUT_KEYS = ("text", "inputs")
TASKS = ("text-classification", "feature-extraction")
POOLINGS = ("mean", "cls")
DEFAULTS: dict[str, Any] = {
    "model_dir": ".",
    "task": "text-classification",
    "max_length": 256,
    "truncation": True,
    "pooling": "mean",
    "normalize": False,
    "token_budget": 8192,
    "max_texts": 256,
}
# A sub-batch with at least this many texts is closed once half of it would be padding.
MIN_SPLIT = 4

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Settings:
    """The handler's options, checked once at load time."""

    model_dir: str
    task: str
    max_length: int
    truncation: bool
    pooling: str
    normalize: bool
    token_budget: int
    max_texts: int
    threads: int
    device: str

    @classmethod
    def from_options(cls, options: dict[str, Any], context: Context) -> Settings:
        unknown = set(options) - set(DEFAULTS) - {"threads", "device"}
        if unknown:
            raise ValueError(f"unknown transformers option(s): {', '.join(sorted(unknown))}")
        merged = {**DEFAULTS, **options}
        settings = cls(
            model_dir=str(merged["model_dir"]),
            task=str(merged["task"]),
            max_length=int(merged["max_length"]),
            truncation=bool(merged["truncation"]),
            pooling=str(merged["pooling"]),
            normalize=bool(merged["normalize"]),
            token_budget=int(merged["token_budget"]),
            max_texts=int(merged["max_texts"]),
            threads=int(options.get("threads", context.threads)),
            device=str(options.get("device", context.device)),
        )
        if settings.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {settings.task!r}")
        if settings.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
        for name in ("max_length", "token_budget", "max_texts", "threads"):
            if getattr(settings, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        return settings


def texts_of(request: Any, max_texts: int) -> tuple[list[str], bool]:
    """One request → (its texts, whether it was a single text). Raises ``InvalidInput``."""
    if isinstance(request, bytes):
        try:
            request = request.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("body is not valid UTF-8 text") from None
    elif isinstance(request, dict):
        key = next((k for k in INPUT_KEYS if k in request), None)
        if key is None:
            raise InvalidInput('missing field "text" (or "inputs")')
        request = request[key]
        if not isinstance(request, str | list):
            raise InvalidInput(
                f'"{key}" must be a string or a list of strings, got {json_type(request)}'
            )
    if isinstance(request, str):
        if not request.strip():
            raise InvalidInput("the text is empty or blank")
        return [request], True
    if not isinstance(request, list):
        raise InvalidInput(
            'expected a string, a list of strings or an object with "text", '
            f"got {json_type(request)}"
        )
    if not request:
        raise InvalidInput("empty list of texts")
    if len(request) > max_texts:
        raise InvalidInput(f"too many texts in one request: {len(request)} > {max_texts}")
    for index, item in enumerate(request):
        if not isinstance(item, str):
            raise InvalidInput(f"text {index} must be a string, got {json_type(item)}")
        if not item.strip():
            raise InvalidInput(f"text {index} is empty or blank")
    return list(request), False


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    names |= {dict: "object", type(None): "null", bytes: "bytes"}
    return names.get(type(value), type(value).__name__)


def plan_sub_batches(lengths: list[int], token_budget: int) -> list[list[int]]:
    """Cut the indices of ``lengths`` into sub-batches, sorted by length.

    A sub-batch is closed when adding the next (longer) text would make its padded size
    (count x longest) pass ``token_budget``, or, once it holds ``MIN_SPLIT`` texts, when
    more than half of it would be padding.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        length = lengths[index]
        padded = (len(current) + 1) * length
        wasteful = len(current) >= MIN_SPLIT and 2 * (real + length) < padded
        if current and (padded > token_budget or wasteful):
            groups.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        groups.append(current)
    return groups


class TransformersHandler(Handler):
    """Serves a text-classification or feature-extraction model with per-batch padding."""

    settings: Settings
    labels: list[str]
    tokenizer: Any
    model: Any

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        import transformers
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        quiet: Callable[[], None] = transformers.utils.logging.disable_progress_bar
        quiet()  # no "Loading weights" bar in the worker's log
        self.settings = settings = Settings.from_options(context.manifest.options, context)
        torch.set_num_threads(settings.threads)
        folder = (context.model_dir / settings.model_dir).resolve()
        if not folder.is_relative_to(context.model_dir.resolve()):
            raise ValueError(f"model_dir {settings.model_dir!r} is outside the archive")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in the model folder {settings.model_dir!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model_class = (
            AutoModelForSequenceClassification
            if settings.task == "text-classification"
            else AutoModel
        )
        self.model = model_class.from_pretrained(folder, local_files_only=True)
        self.model.to(settings.device).eval()
        self.input_names = [
            name
            for name in self.tokenizer.model_input_names
            if name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.labels = self._labels(context)
        self._shapes: list[tuple[int, bool]] = []

    def _labels(self, context: Context) -> list[str]:
        if self.settings.task != "text-classification":
            return []
        config = self.model.config
        count = int(config.num_labels)
        labels = list(context.manifest.labels or [])
        if labels and len(labels) != count:
            raise ValueError(f"{len(labels)} labels in the manifest for {count} classes")
        id2label = getattr(config, "id2label", None) or {}
        return labels or [str(id2label.get(i, i)) for i in range(count)]

    def signature(self) -> dict[str, Any]:
        """Texts in; an embedding, or a label with its probabilities, out per text."""
        text = {"text": {"dtype": "string", "shape": [None]}}
        if self.settings.task == "feature-extraction":
            width = int(getattr(self.model.config, "hidden_size", 0)) or None
            return {
                "inputs": text,
                "outputs": {"embedding": {"dtype": "float32", "shape": [None, width]}},
            }
        return {
            "inputs": text,
            "outputs": {
                "label": {"dtype": "string", "shape": [None]},
                "confidence": {"dtype": "float64", "shape": [None]},
                "probabilities": {"dtype": "float64", "shape": [None, len(self.labels)]},
            },
        }

    # ------------------------------------------------------------------ stages

    def preprocess(self, requests: list[Any]) -> list[str]:
        """Check every request and flatten the batch into one list of texts."""
        texts: list[str] = []
        shapes: list[tuple[int, bool]] = []
        for request in requests:
            found, single = texts_of(request, self.settings.max_texts)
            texts.extend(found)
            shapes.append((len(found), single))
        self._shapes = shapes
        return texts

    def inference(self, batch: list[str]) -> Floats:
        """One row per text, in order: probabilities, or embeddings for feature-extraction."""
        import torch

        settings = self.settings
        if not batch:
            return np.empty((0, 0), dtype=np.float32)
        encoded = self.tokenizer(
            batch,
            truncation=settings.truncation,
            max_length=settings.max_length if settings.truncation else None,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        lengths = [len(ids) for ids in encoded]
        if not settings.truncation and max(lengths) > settings.max_length:
            raise InvalidInput(
                f"a text has {max(lengths)} tokens, more than max_length {settings.max_length}"
            )
        rows: list[Floats | None] = [None] * len(batch)
        with torch.inference_mode():
            for group in plan_sub_batches(lengths, settings.token_budget):
                outputs = self.forward([encoded[i] for i in group])
                for position, index in enumerate(group):
                    rows[index] = outputs[position]
        return np.stack([row for row in rows if row is not None])

    def forward(self, sequences: list[list[int]]) -> Floats:
        """Run one padded sub-batch of token ids through the model."""
        import torch

        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        device = self.settings.device
        inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
        output = self.model(**inputs)
        if self.settings.task == "text-classification":
            result = torch.softmax(output.logits.float(), dim=-1)
        else:
            result = self.pool(output.last_hidden_state.float(), inputs["attention_mask"])
        floats: Floats = result.cpu().numpy()
        return floats

    def pool(self, hidden: Any, mask: Any) -> Any:
        """One vector per text: the mean over its real tokens, or its first token."""
        import torch

        if self.settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        if self.settings.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def postprocess(self, outputs: Floats) -> list[Any]:
        """Regroup one answer per text into one response per request, in its shape."""
        answers = [self.answer(row) for row in outputs]
        return regroup(answers, self._shapes)

    def answer(self, row: Floats) -> Any:
        """The answer for one text."""
        if self.settings.task == "feature-extraction":
            return {"embedding": row}  # float32 kept: JSON writes the same numbers
        best = int(np.argmax(row))
        return {
            "label": self.labels[best],
            "confidence": round(float(row[best]), 6),
            "probabilities": {
                name: round(float(p), 6) for name, p in zip(self.labels, row, strict=True)
            },
        }
