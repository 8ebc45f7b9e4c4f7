"""Training the moderator's learned layer (``llm_prompting.learned``); scipy, development only.

Used by ``scripts/train-moderation-model`` and the tests. Multinomial logistic
regression (L-BFGS, L2 weight decay, every class weighing the same) on the
prompts' TF-IDF features; the threshold is chosen by cross-validation, so that
the model alone keeps a given share of allowed prompts it never saw.
Deterministic: the same prompts give the same model.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.optimize
import scipy.sparse

from llm_prompting.learned import ALLOWED, LearnedModel, features, weigh
from llm_prompting.moderation import CATEGORIES

CLASSES = [ALLOWED, *[c for c in CATEGORIES if c != "other"]]
MIN_DF = 2  # a feature seen in one prompt only is noise
L2 = 0.1  # weight decay (scikit-learn's C = 10)


class Labelled(Protocol):
    """A labelled prompt (``tests.llm_prompting.moderation_cases.Case``)."""

    refuse: bool
    category: str | None
    prompt: str


def examples(cases: Sequence[Labelled]) -> tuple[list[str], np.ndarray]:
    """The prompts and their class indices: ``allowed``, or the refusal category."""
    labels = [CLASSES.index(c.category if c.refuse and c.category else ALLOWED) for c in cases]
    return [c.prompt for c in cases], np.array(labels)


def fingerprint(paths: Iterable[Path]) -> str:
    """The SHA-256 of the training files, in order: the model records what it learned from."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fit(
    prompts: list[str], labels: np.ndarray, threshold: float = 0.5, trained_on: str = ""
) -> LearnedModel:
    counts = [features(p) for p in prompts]
    df: Counter[str] = Counter()
    for c in counts:
        df.update(c.keys())
    vocabulary = sorted(f for f, n in df.items() if n >= MIN_DF)
    index = {f: i for i, f in enumerate(vocabulary)}
    idf = np.log((1 + len(prompts)) / (1 + np.array([df[f] for f in vocabulary]))) + 1.0
    x = _matrix([weigh(c, index, idf) for c in counts], len(vocabulary))
    # Allowed prompts weigh as much as all refused ones together, and each refusal
    # category the same: a prompt without telling features starts near even odds.
    counts_by_class = np.maximum(np.bincount(labels, minlength=len(CLASSES)), 1)
    weight = len(labels) / (2 * counts_by_class)
    weight[1:] /= len(CLASSES) - 1
    sample = weight[labels]
    y = np.eye(len(CLASSES))[labels]
    shape = (len(vocabulary) + 1, len(CLASSES))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta.reshape(shape)
        logits = x @ w[:-1] + w[-1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        value = (
            -(sample * np.log((p * y).sum(axis=1) + 1e-12)).sum() + 0.5 * L2 * (w[:-1] ** 2).sum()
        )
        delta = (p - y) * sample[:, None]
        grad = np.vstack([x.T @ delta + L2 * w[:-1], delta.sum(axis=0)])
        return value, grad.ravel()

    result = scipy.optimize.minimize(
        loss, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    )
    w = result.x.reshape(shape)
    return LearnedModel(vocabulary, idf, w[:-1], w[-1], CLASSES, threshold, trained_on)


def _matrix(rows: list[dict[int, float]], width: int) -> scipy.sparse.csr_matrix:
    data: list[float] = []
    cols: list[int] = []
    ptr = [0]
    for row in rows:
        cols.extend(row.keys())
        data.extend(row.values())
        ptr.append(len(cols))
    return scipy.sparse.csr_matrix((data, cols, ptr), shape=(len(rows), width))


def cross_validated(prompts: list[str], labels: np.ndarray, folds: int) -> np.ndarray:
    """Each prompt's probability of ``allowed`` from a model trained without its fold."""
    order = np.random.default_rng(0).permutation(len(prompts))
    allowed = np.zeros(len(prompts))
    for k in range(folds):
        held = order[k::folds]
        keep = np.setdiff1d(order, held)
        model = fit([prompts[i] for i in keep], labels[keep])
        for i in held:
            allowed[i] = model.scores(prompts[i]).allowed
    return allowed


def threshold_keeping(p_allowed: np.ndarray, labels: np.ndarray, kept: float) -> float:
    """The highest threshold under which at most ``1 - kept`` of the allowed prompts fall."""
    fine = np.sort(p_allowed[labels == 0])
    return float(fine[int(len(fine) * (1 - kept))])
