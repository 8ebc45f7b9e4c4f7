"""The moderation tables and the figures a moderator scores on them.

- ``moderation_table.tsv`` / ``moderation_heldout.tsv``: the first tables (EN, FR, ES, DE);
- ``likeness_set.tsv`` / ``likeness_heldout.tsv``: issue 19's set for likeness images
  (deception, minors, intimate content, violence to the subject, hate symbols; six
  languages), scored by category;
- ``likeness_dev.tsv``: development rows for the same categories, written from each
  category's concept, with many innocent near-misses.

Used by the tests, by ``benchmarks/expand.py`` and by ``benchmarks/moderation.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llm_prompting.moderation import CATEGORIES, Moderator, Verdict

TABLE = Path(__file__).with_name("moderation_table.tsv")
LIKENESS = Path(__file__).with_name("likeness_set.tsv")
LIKENESS_HELDOUT = Path(__file__).with_name("likeness_heldout.tsv")
LIKENESS_DEV = Path(__file__).with_name("likeness_dev.tsv")
LIKENESS_BLIND = Path(__file__).with_name("likeness_blind.tsv")  # scored, never tuned on
LIKENESS_BLIND3 = Path(__file__).with_name("likeness_blind3.tsv")  # the same, written later
EVERYDAY_BLIND = Path(__file__).with_name("likeness_blind_everyday.tsv")  # plain, never trained on


def training_sets() -> list[Path]:
    """What the moderator's learned layer learns from: every set but the blind ones."""
    here = Path(__file__).parent
    return sorted(p for p in here.glob("*.tsv") if not p.name.startswith("likeness_blind"))


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


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: Verdict

    @property
    def right(self) -> bool:
        return self.verdict.allowed is not self.case.refuse

    @property
    def group(self) -> str:
        """``allowed`` or the expected category: the rows of the table by category."""
        return self.case.category or "-" if self.case.refuse else "allowed"


@dataclass(frozen=True)
class Row:
    group: str  # "allowed" or a category
    total: int
    right: int  # allowed: kept; a category: refused (under any category)
    right_category: int  # refused under the expected category (allowed: = right)

    @property
    def rate(self) -> float:
        return self.right / max(1, self.total)


def by_category(moderator: Moderator, cases: list[Case]) -> tuple[list[Row], list[Outcome]]:
    """One row per group (allowed first, then categories in order) and every wrong outcome."""
    outcomes = [Outcome(c, moderator.check(c.prompt)) for c in cases]
    groups = sorted({o.group for o in outcomes}, key=_group_order)
    rows = []
    for group in groups:
        mine = [o for o in outcomes if o.group == group]
        right = [o for o in mine if o.right]
        exact = [o for o in right if o.verdict.category == o.case.category]
        rows.append(Row(group, len(mine), len(right), len(exact)))
    return rows, [o for o in outcomes if not o.right]


def _group_order(group: str) -> int:
    return -1 if group == "allowed" else CATEGORIES.index(group)
