"""The prompt's token budget, counted one way by every entry point: the profile's CLIP tokenizers.

The API (at submission), ``imagine expand``, ``imagine generate``, batch runs and the
worker all expand prompts with ``llm_prompting.expand(..., count_tokens=...)`` and a
``ClipTokenCounter`` over the tokenizers the image model encodes with, so the same
prompt gets the same expansion whichever way it comes in (issue 17). The pipeline
builds its counter on the tokenizers it loaded; the others load the tokenizers alone,
from the same files (a few MB of vocabulary, no weights): the API may run without the
worker and must not load a diffusion pipeline to count tokens. Not the word-based
``estimate_tokens``: it over-counts about 1.4x on purpose, which would cut a real SDXL
prompt to about 55 of its 77 tokens (README "The contract").

- ``smoke``: the byte-level tokenizer built in code (its saved pipeline holds the same);
- ``sdxl``: ``tokenizer/`` and ``tokenizer_2/`` of the diffusers folder, or of the config
  folder a single-file checkpoint needs (``IMAGINE_SDXL_CONFIG_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from imagine.models.config import ModelNotFound

CLIP_LENGTH = 77  # positions of each SDXL text encoder, start and end tokens included
TOKENIZERS = ("tokenizer", "tokenizer_2")


@dataclass(frozen=True, eq=False)  # compared by identity: it is part of expand's cache key
class ClipTokenCounter:
    """Token positions a text takes in the longer of the CLIP tokenizations (start and end
    included, never truncated): what ``llm_prompting``'s budget counts."""

    tokenizers: tuple[Any, ...]  # transformers CLIPTokenizer, one per text encoder

    def __call__(self, text: str) -> int:
        return max(
            len(tok(text, truncation=False, verbose=False).input_ids) for tok in self.tokenizers
        )  # verbose: no warning for a text over 77 tokens; counting them is the point


def byte_level_vocab() -> dict[str, int]:
    """CLIP's special tokens plus one token per byte, with and without ``</w>``.

    The characters are GPT-2's printable stand-ins for bytes, so every string
    tokenizes without merges (the smoke tokenizer never needs a vocabulary file
    from a hub).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in chars:
            vocab[ch + suffix] = len(vocab)
    return vocab  # 514 entries


def byte_level_tokenizer() -> Any:  # transformers.CLIPTokenizer
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=CLIP_LENGTH)


def tokenizer_folders(profile: str, model_dir: Path | None, config_dir: Path | None) -> list[Path]:
    """The ``sdxl`` profile's tokenizer folders (none for ``smoke``); ``ModelNotFound``
    naming what is missing. Cheap: the service checks them when it starts."""
    if profile == "smoke":
        return []
    root = model_dir
    if model_dir is not None and model_dir.is_file():
        root = config_dir  # a single-file checkpoint: its config folder holds the tokenizers
    folders = [root / name for name in TOKENIZERS] if root is not None else []
    if not folders or not all(folder.is_dir() for folder in folders):
        raise ModelNotFound(
            "the sdxl profile counts prompt tokens with its CLIP tokenizers: tokenizer/ and "
            "tokenizer_2/ of IMAGINE_MODEL_DIR (a diffusers folder), or of "
            "IMAGINE_SDXL_CONFIG_DIR with a single-file checkpoint; not found in "
            f"{root or 'IMAGINE_MODEL_DIR (not set)'}"
        )
    return folders


@lru_cache(maxsize=4)
def token_counter(
    profile: str, model_dir: Path | None = None, config_dir: Path | None = None
) -> ClipTokenCounter:
    """The profile's counter, its tokenizers loaded once per process (the first call
    imports transformers: about a second)."""
    folders = tokenizer_folders(profile, model_dir, config_dir)
    if not folders:
        return ClipTokenCounter((byte_level_tokenizer(),))  # both encoders share it
    from transformers import CLIPTokenizer

    return ClipTokenCounter(
        tuple(CLIPTokenizer.from_pretrained(folder, local_files_only=True) for folder in folders)
    )
