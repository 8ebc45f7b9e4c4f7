"""Prompt expansion figures: template throughput, cache hit cost, moderation and token estimate.

    .venv/bin/python benchmarks/expand.py [--rounds N] [--clip-vocab PATH]

Prints:
- template expansions per second, end to end through ``expand`` with the
  cache off (input moderation, expansion, contract check, output moderation),
  and the share of that spent in the rule moderator and in the contract;
- the cost of a cache hit;
- precision and recall of the default moderator on the moderation table
  (``tests/llm_prompting/moderation_table.tsv``) and on held-out prompts
  written after the word lists were frozen (``moderation_heldout.tsv``);
- with ``--clip-vocab`` (CLIP's ``bpe_simple_vocab_16e6.txt.gz``, e.g. from
  an open_clip wheel): how the word-based token estimate compares with CLIP's
  real tokenizer on the template expansions.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_prompting import STYLES, Contract, PromptingConfig, estimate_tokens, expand  # noqa: E402
from llm_prompting.moderation import RuleModerator  # noqa: E402
from llm_prompting.prompting import cache_for  # noqa: E402
from tests.llm_prompting.moderation_cases import TABLE, load_cases, score  # noqa: E402

PROMPTS = [
    "me as an astronaut on Mars",
    "moi en astronaute sur Mars",
    "me as a 1920s jazz singer",
    "yo como torero en la plaza de toros de Sevilla",
    "ich als Ritter auf einer Burg im Mittelalter",
    "me surfing a giant wave at Nazaré, Portugal",
    "me as a firefighter rescuing a cat from a tree",
    "me reading in a cozy café in Montréal during a snowstorm",
    "me as a samurai in feudal Japan, cherry blossoms",
    "me shooting hoops at Rucker Park in Harlem",
    "I'm hiking Kilimanjaro at sunrise with my dog",
    "make me a pirate captain on a galleon",
]


def per_second(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def throughput(rounds: int) -> None:
    config = PromptingConfig(cache_size=0)
    requests = [(p, s) for p in PROMPTS for s in STYLES]
    expand(*requests[0], config)  # load word lists
    start = time.perf_counter()
    for _ in range(rounds):
        for prompt, style in requests:
            expand(prompt, style, config)
    elapsed = time.perf_counter() - start
    n = rounds * len(requests)
    each = f"{1e3 * elapsed / n:.2f} ms each"
    print(f"template expand, cache off: {n / elapsed:,.0f} expansions/s ({each})")

    rules, contract = RuleModerator(), Contract("a person")
    sample = expand(PROMPTS[0], "photo", config).prompt
    mod = per_second(lambda: rules.check(sample), 200)
    con = per_second(lambda: contract.check(PROMPTS[0], sample), 200)
    print(f"  rule moderator: {1e3 / mod:.2f} ms a text (runs twice per request)")
    print(f"  contract check: {1e3 / con:.2f} ms an expansion")


def cache_hits(rounds: int) -> None:
    config = PromptingConfig()
    expand(PROMPTS[0], "photo", config)
    n = 2000 * rounds
    rate = per_second(lambda: expand(PROMPTS[0], "photo", config), n)
    cache = cache_for(config)
    print(f"cache hit: {1e6 / rate:.1f} µs per expand ({cache.hits} hits, {cache.misses} miss)")


def moderation_tables() -> None:
    rules = RuleModerator()
    print(f"rule moderator, moderation table: {score(rules, load_cases())}")
    heldout = load_cases(TABLE.with_name("moderation_heldout.tsv"))
    print(f"rule moderator, held-out table: {score(rules, heldout)}")
    for case in heldout:
        verdict = rules.check(case.prompt)
        if verdict.allowed is case.refuse:
            wrong = "missed" if case.refuse else f"false alarm ({verdict.category})"
            print(f"  {wrong}: {case.prompt}")


def clip_tokens(vocab: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = clip_tokenizer(vocab, CLIPTokenizer)
    texts = [expand(p, s).prompt for p in PROMPTS for s in STYLES] + PROMPTS
    ratios, under = [], 0
    for text in texts:
        real = len(tokenizer(text).input_ids)
        ratios.append(estimate_tokens(text) / real)
        under += estimate_tokens(text) < real
    print(
        f"token estimate / CLIP tokenizer on {len(texts)} texts: min {min(ratios):.2f}, "
        f"mean {statistics.mean(ratios):.2f}, max {max(ratios):.2f}; under-counted {under}"
    )


def clip_tokenizer(vocab: Path, cls):
    """CLIP's tokenizer from the original BPE merges file (as open_clip and OpenAI ship it)."""
    with gzip.open(vocab) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    symbols = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    ordered = [chr(b) for b in printable] + [s for b, s in enumerate(symbols) if b not in printable]
    words = ordered + [s + "</w>" for s in ordered] + ["".join(p) for p in pairs]
    words += ["<|startoftext|>", "<|endoftext|>"]
    return cls(vocab={w: i for i, w in enumerate(words)}, merges=pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clip-vocab", type=Path, help="bpe_simple_vocab_16e6.txt.gz")
    args = parser.parse_args()
    throughput(args.rounds)
    cache_hits(args.rounds)
    moderation_tables()
    if args.clip_vocab:
        clip_tokens(args.clip_vocab)


if __name__ == "__main__":
    main()
