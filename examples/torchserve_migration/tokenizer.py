"""Tokenize Korean movie reviews for an ``nn.EmbeddingBag`` (standard library only).

This file is shared by ``train.py`` and ``handler.py`` and packed into the ``.mar`` with
``--extra-files``; TorchServe puts the model folder on ``sys.path``, so the handler can say
``from tokenizer import encode_batch``.

A review becomes its whitespace-separated words plus the character bigrams of every word
longer than two characters. Korean glues particles and endings onto words, so "재밌게",
"재밌어요" and "재밌다" share the bigram "재밌" but no word:

    >>> tokens("정말 재밌게 잘봤습니다!")
    ['정말', '재밌게', '재밌', '밌게', '잘봤습니다', '잘봤', '봤습', '습니', '니다']
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

PADDING = "<pad>"
PADDING_ID = 0

# Hangul syllables, compatibility jamo (ㅋㅋ, ㅠㅠ), conjoining jamo, latin letters, digits.
_DROP = re.compile(r"[^가-힣ㄱ-ㅣᄀ-ᇿa-z0-9\s]+")


def tokens(text: str) -> list[str]:
    """Return the words and in-word character bigrams of one review, in order."""
    cleaned = _DROP.sub(" ", unicodedata.normalize("NFC", text).lower())
    found: list[str] = []
    for word in cleaned.split():
        found.append(word)
        if len(word) > 2:
            found.extend(word[i : i + 2] for i in range(len(word) - 1))
    return found


def build_vocabulary(texts: Iterable[str], min_count: int = 1) -> dict[str, int]:
    """Map every token seen at least ``min_count`` times to an id; id 0 is the padding token.

    Ids follow descending frequency, ties in first-seen order, so the same texts always give
    the same vocabulary.
    """
    counts = Counter(token for text in texts for token in tokens(text))
    vocabulary = {PADDING: PADDING_ID}
    for token, count in counts.most_common():
        if count >= min_count:
            vocabulary[token] = len(vocabulary)
    return vocabulary


def encode(text: str, vocabulary: dict[str, int]) -> list[int]:
    """Return the ids of the known tokens of ``text``, or ``[PADDING_ID]`` if none is known.

    The padding id keeps every bag non-empty; the model's ``EmbeddingBag`` ignores it, so a
    review with no known token scores as the classifier's bias alone.
    """
    ids = [vocabulary[token] for token in tokens(text) if token in vocabulary]
    return ids or [PADDING_ID]


def encode_batch(texts: Iterable[str], vocabulary: dict[str, int]) -> tuple[list[int], list[int]]:
    """Return ``(ids, offsets)`` for ``EmbeddingBag``: all ids end to end, each bag's start.

    >>> encode_batch(["좋아요", "별로"], {"<pad>": 0, "좋아요": 1, "좋아": 2, "아요": 3})
    ([1, 2, 3, 0], [0, 3])
    """
    ids: list[int] = []
    offsets: list[int] = []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(encode(text, vocabulary))
    return ids, offsets
