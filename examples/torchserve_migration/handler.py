"""A TorchServe handler for Korean movie-review sentiment, written only against TorchServe's API.

Nothing here knows about Podium: the same ``.mar`` runs on ``torchserve`` and on
``podium serve``. TorchServe loads this file as the ``--handler`` of the archive, finds its
one class, and puts the model folder (with ``tokenizer.py``, ``vocab.json`` and
``index_to_name.json`` from ``--extra-files``) on ``sys.path``.

Each request carries one review: a text/plain body, raw UTF-8 bytes, a JSON body
``{"text": "..."}`` (or a JSON string), or a multipart form field ``data``. It is answered
``{"label": "positive", "confidence": 0.99...}``. The reviews of a batch go through the
model in one call. A request without a usable review is answered 400 on its own, with
``{"code": 400, "type": "InvalidReview", "message": "..."}``; the other requests of its
batch are answered as usual.
"""

import json
import os

import torch
from tokenizer import encode_batch
from ts.torch_handler.base_handler import BaseHandler


def review_of(row):
    """Return the review one request carries, as TorchServe delivers it in ``data``.

    Raises ``ValueError`` with the reason when the request holds no usable review.
    """
    body = row.get("data") or row.get("body")
    if isinstance(body, dict):
        body = body.get("text")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the review is not valid UTF-8") from None
    if not isinstance(body, str):
        raise ValueError('expected a review as text, UTF-8 bytes or JSON {"text": "..."}')
    if not body.strip():
        raise ValueError("the review is empty")
    return body


class SentimentHandler(BaseHandler):
    """Classify each review as negative or positive, with the softmax probability."""

    def initialize(self, context):
        """Load model.pt and index_to_name.json (BaseHandler), then the vocabulary."""
        super().initialize(context)
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, "vocab.json"), encoding="utf-8") as file:
            self.vocabulary = json.load(file)
        self.rejected = {}

    def preprocess(self, data):
        """Tokenize the batch's reviews into the ``(ids, offsets)`` of the model's EmbeddingBag.

        Requests without a usable review are left out and remembered, by index, in
        ``self.rejected`` (one batch at a time runs in a worker).
        """
        self.rejected = {}
        reviews = []
        for index, row in enumerate(data):
            try:
                reviews.append(review_of(row))
            except ValueError as error:
                self.rejected[index] = str(error)
        ids, offsets = encode_batch(reviews, self.vocabulary)
        return (
            torch.tensor(ids, dtype=torch.long, device=self.device),
            torch.tensor(offsets, dtype=torch.long, device=self.device),
        )

    def inference(self, data, *args, **kwargs):
        """Score all the batch's reviews in one forward pass; return their logits."""
        ids, offsets = data
        with torch.inference_mode():
            return self.model(ids, offsets)

    def postprocess(self, data):
        """Answer every request of the batch, in order: a label, or a 400 saying why not."""
        scored = iter(torch.softmax(data, dim=1).tolist())
        answers = []
        for index in range(len(data) + len(self.rejected)):
            if index in self.rejected:
                self.context.set_response_status(code=400, phrase="Bad Request", idx=index)
                message = self.rejected[index]
                answers.append({"code": 400, "type": "InvalidReview", "message": message})
                continue
            probabilities = next(scored)
            best = max(range(len(probabilities)), key=probabilities.__getitem__)
            answers.append({"label": self.mapping[str(best)], "confidence": probabilities[best]})
        return answers
