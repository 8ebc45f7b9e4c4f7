"""Registries: a name in the config picks a factory, and each (name, config) is built once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from llm_prompting.config import PromptingConfig
from llm_prompting.errors import ExpanderUnavailable

T = TypeVar("T")

_built: dict[tuple[str, str, PromptingConfig], Any] = {}
_lock = threading.Lock()  # two first requests must not load a model twice


def build_once(
    kind: str,
    registry: Mapping[str, Callable[[PromptingConfig], T]],
    name: str,
    config: PromptingConfig,
) -> T:
    """``registry[name](config)``, remembered; an unknown name is ``ExpanderUnavailable``."""
    if name not in registry:
        raise ExpanderUnavailable(
            f"unknown {kind} {name!r}; choose one of {', '.join(sorted(registry))}"
        )
    key = (kind, name, config)
    with _lock:
        if key not in _built:
            _built[key] = registry[name](config)
        return cast(T, _built[key])
