"""A bounded LRU of text-encoder outputs, so a repeated prompt skips both CLIP encoders.

Keys are the exact text sent to the encoders (after expansion), the negative
prompt and whether classifier-free guidance is on; values are whatever the
pipeline's ``encode_prompt`` returned (for SDXL: prompt and negative embeds
[1, 77, 2048] and pooled [1, 1280], about 0.6 MB in bf16 per entry).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class PromptCache:
    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        self.size = size  # 0 turns the cache off
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)  # least recently used

    def __len__(self) -> int:
        return len(self._entries)
