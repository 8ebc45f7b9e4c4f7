"""The ``PromptExpander`` protocol, the ``ExpandedPrompt`` it returns, and the backend registry.

A backend turns the user's words into a scene and details; ``compose`` frames
them with the style preset within the token budget. Whether the result may be
used is decided elsewhere, by one validator (``contract.py``) for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from llm_prompting.config import PromptingConfig
from llm_prompting.contract import Contract
from llm_prompting.errors import ExpanderUnavailable
from llm_prompting.registry import build_once
from llm_prompting.styles import Style


@dataclass(frozen=True)
class ExpandedPrompt:
    prompt: str  # English prompt for the image model
    negative_prompt: str
    style: str  # the preset applied
    added: tuple[
        str, ...
    ]  # phrases not from the user's words, in prompt order: each can be removed
    backend: str  # the backend whose text this is: "template" after a fallback
    model: str  # which model or rule set wrote it
    warnings: tuple[str, ...] = ()  # e.g. a fallback to the template expander, and why
    original: str = ""  # the user's prompt as received
    tokens: int = 0  # token positions of ``prompt``, start and end included

    def to_dict(self) -> dict[str, Any]:
        # The fields are flat, so no deep copy (``asdict``): this runs for every job submitted.
        return {**vars(self), "added": list(self.added), "warnings": list(self.warnings)}

    def with_warnings(self, *warnings: str) -> ExpandedPrompt:
        return replace(self, warnings=(*self.warnings, *warnings))


class PromptExpander(Protocol):
    name: str  # registry name: "template", "openai", "transformers"
    model_id: str  # e.g. "meta-llama/Llama-3.1-8B-Instruct", "template-1"

    def expand(self, prompt: str, style: Style, contract: Contract) -> ExpandedPrompt:
        """An expansion of ``prompt``; LLM backends raise ``ExpansionFailed`` without one."""
        ...


def compose(
    style: Style, scene: str, details: Iterable[str], contract: Contract
) -> tuple[str, tuple[str, ...]]:
    """``"<lead> <scene>, <detail>, ..."`` and the phrases added to the scene.

    Details come first from the backend, then from the style, and each is kept
    only while the whole prompt stays within the token budget.
    """
    prompt, added = f"{style.lead} {scene}", [style.lead]
    seen = {scene.casefold()}
    for detail in (*details, *style.details):
        detail = detail.strip().strip(",.")
        if not detail or detail.casefold() in seen:
            continue
        seen.add(detail.casefold())
        if contract.fits(f"{prompt}, {detail}"):
            prompt += f", {detail}"
            added.append(detail)
    return prompt, tuple(added)


def _template(config: PromptingConfig) -> PromptExpander:
    from llm_prompting.template import TemplateExpander

    return TemplateExpander()


def _openai(config: PromptingConfig) -> PromptExpander:
    from llm_prompting.openai_backend import openai_expander

    return openai_expander(config)


def _transformers(config: PromptingConfig) -> PromptExpander:
    check_model_dir(config.model_dir)  # before paying for the torch import
    from llm_prompting.transformers_backend import transformers_expander

    return transformers_expander(config)


def check_model_dir(model_dir: Path | None) -> Path:
    """``model_dir`` if it looks like a ``save_pretrained`` folder, else ``ExpanderUnavailable``."""
    if model_dir is None:
        raise ExpanderUnavailable("the transformers expander needs a model folder (model_dir)")
    if not (Path(model_dir) / "config.json").is_file():
        raise ExpanderUnavailable(f"{model_dir}: not a model folder (no config.json)")
    return Path(model_dir)


EXPANDERS: dict[str, Callable[[PromptingConfig], PromptExpander]] = {
    "template": _template,
    "openai": _openai,
    "transformers": _transformers,
}


def get_expander(config: PromptingConfig) -> PromptExpander:
    """The expander named by ``config.expander``, built once per config value."""
    return build_once("expander", EXPANDERS, config.expander, config)
