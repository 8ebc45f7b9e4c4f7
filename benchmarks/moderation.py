"""The rule moderator by category on the labelled moderation sets (issue 19).

Prints, for each set, one row per group (allowed prompts kept; each category's
prompts refused, and refused under that category), then every miss and false
alarm, and writes the same as JSON:

    .venv/bin/python benchmarks/moderation.py [--json benchmarks/results/moderation-DATE.json]

Sets: ``likeness_set.tsv`` (tuned on), the development sets
``likeness_heldout.tsv`` and ``likeness_dev.tsv``, the blind sets
``likeness_blind.tsv``, ``likeness_blind3.tsv`` and ``likeness_blind_everyday.tsv``
(written apart from the lists, never tuned or trained on), and the first tables
``moderation_table.tsv`` / ``moderation_heldout.tsv``. Each set is scored twice: by
the word lists alone and by the default moderator (the lists and the learned layer,
which learned from every set but the blind ones). Only a set neither ever saw gives
an honest figure (README, "Moderation").
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_prompting.learned import LearnedModel  # noqa: E402
from llm_prompting.moderation import RuleModerator  # noqa: E402
from tests.llm_prompting.moderation_cases import (  # noqa: E402
    EVERYDAY_BLIND,
    LIKENESS,
    LIKENESS_BLIND,
    LIKENESS_BLIND3,
    LIKENESS_DEV,
    LIKENESS_HELDOUT,
    TABLE,
    by_category,
    load_cases,
)

SETS = {
    "likeness_set": LIKENESS,
    "likeness_heldout": LIKENESS_HELDOUT,
    "likeness_dev": LIKENESS_DEV,
    "likeness_blind": LIKENESS_BLIND,
    "likeness_blind3": LIKENESS_BLIND3,
    "likeness_blind_everyday": EVERYDAY_BLIND,
    "moderation_table": TABLE,
    "moderation_heldout": TABLE.with_name("moderation_heldout.tsv"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    moderators = {"lists": RuleModerator(), "default": RuleModerator(LearnedModel.load())}
    report: dict = {"date": datetime.date.today().isoformat(), "sets": {}}
    for (name, path), (which, moderator) in itertools.product(SETS.items(), moderators.items()):
        cases = load_cases(path)
        start = time.perf_counter()
        rows, wrong = by_category(moderator, cases)
        ms = (time.perf_counter() - start) * 1000 / len(cases)
        print(f"\n{name}, {which} ({path.name}): {len(cases)} prompts, {ms:.2f} ms a prompt")
        print(f"  {'group':15} {'prompts':>7} {'right':>6} {'rate':>6} {'same category':>14}")
        for row in rows:
            print(f"  {row.group:15} {row.total:7} {row.right:6} {row.rate:6.2f} "
                  f"{row.right_category:14}")  # fmt: skip
        for o in wrong:
            kind = "miss" if o.case.refuse else f"false alarm ({o.verdict.category})"
            print(f"  - {kind}: [{o.case.language}] {o.case.prompt}")
        report["sets"].setdefault(name, {})[which] = {
            "prompts": len(cases),
            "ms_per_prompt": round(ms, 3),
            "rows": [vars(r) | {"rate": round(r.rate, 3)} for r in rows],
            "misses": [o.case.prompt for o in wrong if o.case.refuse],
            "false_alarms": [
                {"prompt": o.case.prompt, "category": o.verdict.category}
                for o in wrong
                if not o.case.refuse
            ],
        }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
