"""The ``transformers`` backend: Llama 3.1 Instruct from a local folder, in this process.

The folder is what ``save_pretrained`` writes (config, weights, tokenizer with
its chat template); nothing is downloaded. Runs on CUDA in bfloat16 when
present, else on the CPU in float32, with greedy decoding so one prompt always
gives one answer. There is no constrained decoding: the answer is parsed and
validated like the openai backend's, and falls back when it is not the JSON asked for.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_prompting.config import PromptingConfig
from llm_prompting.errors import ExpanderUnavailable, ExpansionFailed
from llm_prompting.expander import check_model_dir
from llm_prompting.instructions import ChatExpander, Messages


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ExpanderUnavailable(f"device must be auto, cpu or cuda, got {device!r}")
    return device


class LocalLlama:
    """A chat model loaded from ``folder``; ``complete`` turns chat messages into the reply text."""

    def __init__(self, folder: Path, device: str = "auto", max_new_tokens: int = 256):
        folder = check_model_dir(folder)
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if not self.tokenizer.chat_template:
            raise ExpanderUnavailable(f"{folder}: the tokenizer has no chat template")
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self.model: Any = cast(Any, model)
        self.model.to(self.device).eval()
        self.model_id = folder.name
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one generate at a time per model

    def complete(self, messages: Messages) -> str:
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        try:
            with self._lock, torch.inference_mode():
                out = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
        except (RuntimeError, ValueError) as exc:  # CUDA out of memory, bad generation config
            raise ExpansionFailed(f"generation failed: {exc}", transient=True) from None
        return str(self.tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True))


def transformers_expander(config: PromptingConfig) -> ChatExpander:
    llama = LocalLlama(check_model_dir(config.model_dir), config.device, config.max_new_tokens)
    return ChatExpander("transformers", llama.model_id, llama.complete)
