"""``imagine expand "PROMPT" [--style NAME] [--backend NAME] [--json]``: moderate, then expand.

Prints the prompt the image model would get, what was added to the user's
words, and any warning (a fallback to the template expander, a prompt that was
not translated). Nothing is written anywhere. The token budget is counted with the
profile's CLIP tokenizers, loaded alone (``imagine.tokens``), as the API and the
pipeline count it: the same prompt expands the same way everywhere.
"""

from __future__ import annotations

import argparse

from imagine.cli.output import emit_json
from imagine.settings import Settings
from llm_prompting import EXPANDERS, STYLES, ExpandedPrompt, expand

NAME = "expand"
HELP = "Moderate a prompt and expand it into the English prompt the image model gets."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", metavar="PROMPT", help='what to draw, e.g. "me as an astronaut"')
    parser.add_argument("--style", choices=sorted(STYLES), help="style preset (default: photo)")
    parser.add_argument("--backend", choices=sorted(EXPANDERS), help="expander backend")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.backend:
        settings = settings.replace(expander=args.backend)
    result = expand(args.prompt, args.style, settings.prompting(), settings.token_counter())
    if args.json:
        emit_json(result.to_dict())
    else:
        print(describe(result))
    return 0


def describe(result: ExpandedPrompt) -> str:
    lines = [
        result.prompt,
        "",
        f"negative: {result.negative_prompt}",
        f"style: {result.style}; backend: {result.backend} ({result.model}); "
        f"tokens: {result.tokens}",
        "added: " + ("; ".join(result.added) or "nothing"),
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
