"""The moderation table (``moderation_table.tsv``) and the figures a moderator scores on it.

Used by the tests and by ``benchmarks/expand.py``, which prints the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llm_prompting.moderation import Moderator

TABLE = Path(__file__).with_name("moderation_table.tsv")


@dataclass(frozen=True)
class Case:
    refuse: bool
    category: str | None
    language: str
    prompt: str
    known: str  # "", "miss" or "false_alarm"

    @property
    def id(self) -> str:
        return f"{'refuse' if self.refuse else 'allow'}-{self.language}-{self.prompt[:40]}"


def load_cases(table: Path = TABLE) -> list[Case]:
    cases = []
    for line in table.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        expected, category, language, prompt, known = [*line.split("\t"), ""][:5]
        assert expected in ("allow", "refuse"), line
        cases.append(Case(expected == "refuse", None if category == "-" else category,
                          language, prompt, known.strip()))  # fmt: skip
    return cases


@dataclass(frozen=True)
class Score:
    cases: int
    refused_expected: int
    true_refusals: int
    false_refusals: int
    missed: int
    right_category: int  # true refusals with the expected category

    @property
    def precision(self) -> float:
        return self.true_refusals / max(1, self.true_refusals + self.false_refusals)

    @property
    def recall(self) -> float:
        return self.true_refusals / max(1, self.refused_expected)

    def __str__(self) -> str:
        return (
            f"{self.cases} prompts ({self.refused_expected} to refuse): "
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, "
            f"{self.false_refusals} false alarm(s), {self.missed} miss(es), "
            f"category right on {self.right_category}/{self.true_refusals} refusals"
        )


def score(moderator: Moderator, cases: list[Case]) -> Score:
    tp = fp = fn = right = 0
    for case in cases:
        verdict = moderator.check(case.prompt)
        if case.refuse and not verdict.allowed:
            tp += 1
            right += verdict.category == case.category
        elif case.refuse:
            fn += 1
        elif not verdict.allowed:
            fp += 1
    return Score(len(cases), sum(c.refuse for c in cases), tp, fp, fn, right)
