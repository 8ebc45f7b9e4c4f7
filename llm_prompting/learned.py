"""A small learned text classifier behind the word lists: character n-grams, one linear layer.

The word lists refuse what they name; paraphrases they do not hold get
through. This model reads a prompt as its character 3- to 5-grams (inside
words, so "verprügle" shares most of its features with "verprügeln") and its
words and word pairs, weighs them by TF-IDF and scores the classes
``allowed`` and each of ``CATEGORIES`` with multinomial logistic regression.
It is trained by ``scripts/train-moderation-model`` on the project's labelled
prompts (the blind sets excepted) and shipped as ``data/moderation_model.npz``;
at run time it needs only numpy.

``RuleModerator`` asks it only when no list has refused, and refuses when the
model's probability that the prompt is allowed is under ``threshold``; a
prompt of fewer than ``MIN_WORDS`` words gives it too little to read ("me
knitting", "salut") and is left to the lists.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from llm_prompting.text import fold

MODEL_FILE = "moderation_model.npz"
ALLOWED = "allowed"
MIN_WORDS = 3
_WORD = re.compile(r"[^\W\d_]+")


def features(text: str) -> Counter[str]:
    """The prompt's character 3-5-grams within words (padded with spaces), words and word pairs."""
    tokens = _WORD.findall(fold(text))
    found: Counter[str] = Counter()
    for token in tokens:
        padded = f" {token} "
        for n in (3, 4, 5):
            found.update(padded[i : i + n] for i in range(len(padded) - n + 1))
        found[f"w:{token}"] += 1
    found.update(f"b:{a} {b}" for a, b in itertools.pairwise(tokens))
    return found


def weigh(counts: Counter[str], vocabulary: dict[str, int], idf: np.ndarray) -> dict[int, float]:
    """Sublinear TF-IDF of the known features, L2-normalised: {feature index: weight}."""
    weights = {
        vocabulary[f]: (1.0 + math.log(n)) * float(idf[vocabulary[f]])
        for f, n in counts.items()
        if f in vocabulary
    }
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {i: w / norm for i, w in weights.items()}


@dataclass(frozen=True)
class Scores:
    allowed: float  # the model's probability that the prompt is fine
    category: str  # the likeliest refusal category
    probability: float  # its probability


class LearnedModel:
    """The shipped classifier: vocabulary, IDF, one weight row per class."""

    def __init__(
        self,
        vocabulary: list[str],
        idf: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray,
        classes: list[str],
        threshold: float,
        trained_on: str = "",
    ):
        self.vocabulary = {f: i for i, f in enumerate(vocabulary)}
        self.idf = idf.astype(np.float32)
        self.weights = weights.astype(np.float32)  # (features, classes)
        self.bias = bias.astype(np.float32)
        self.classes = classes
        self.threshold = threshold
        self.trained_on = trained_on

    @classmethod
    def load(cls, path: Path | None = None) -> LearnedModel:
        source = path or resources.files("llm_prompting").joinpath("data", MODEL_FILE)
        with source.open("rb") as file, np.load(file) as data:
            return cls(
                vocabulary=str(data["vocabulary"]).split("\n"),
                idf=data["idf"],
                weights=data["weights"],
                bias=data["bias"],
                classes=str(data["classes"]).split("\n"),
                threshold=float(data["threshold"]),
                trained_on=str(data["trained_on"]),
            )

    def save(self, path: Path) -> None:
        order = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez_compressed(
            path,
            vocabulary=np.array("\n".join(order)),
            idf=self.idf.astype(np.float16),
            weights=self.weights.astype(np.float16),
            bias=self.bias,
            classes=np.array("\n".join(self.classes)),
            threshold=np.array(self.threshold),
            trained_on=np.array(self.trained_on),
        )

    def scores(self, text: str) -> Scores:
        x = weigh(features(text), self.vocabulary, self.idf)
        logits = self.bias.astype(np.float64).copy()
        for i, w in x.items():
            logits += w * self.weights[i]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        allowed = self.classes.index(ALLOWED)
        refusals = p.copy()
        refusals[allowed] = -1.0
        likeliest = int(refusals.argmax())
        return Scores(float(p[allowed]), self.classes[likeliest], float(p[likeliest]))

    def refuses(self, text: str) -> Scores | None:
        """The scores when the model refuses ``text``, else None."""
        if len(_WORD.findall(fold(text))) < MIN_WORDS:
            return None
        scores = self.scores(text)
        return scores if scores.allowed < self.threshold else None
