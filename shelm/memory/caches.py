"""Everything the frozen memories keep for reuse: loaded models and tokenizers per process, and the memo cache of
each memory's observation mapping.

Loading a frozen model costs seconds and its weights never change, so one load per process serves training and
the evaluation after it (the caches are bounded: a sweep's parent checks trials of a few models). `clear_caches`
drops every loaded model, e.g. in a parent process that loaded them only to check its trials.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from shelm.memory.image_models import LoadedCLIP, load_clip, load_efficientnet_lite0
from shelm.memory.weights import LoadedLanguageModel, load_language_model, load_tokenizer


@functools.lru_cache(maxsize=2)
def cached_language_model(lm: str, dtype: str, layers: int) -> LoadedLanguageModel:
    """`load_language_model`, once per process and setting."""
    return load_language_model(lm, dtype, layers)


@functools.lru_cache(maxsize=2)
def cached_tokenizer(lm: str) -> Any:
    """`load_tokenizer`, once per process and model."""
    return load_tokenizer(lm)


@functools.lru_cache(maxsize=2)
def cached_clip(clip_model: str) -> LoadedCLIP:
    """`load_clip`, once per process and model."""
    return load_clip(clip_model)


@functools.lru_cache(maxsize=1)
def cached_efficientnet_lite0() -> tuple[nn.Module, str]:
    """`load_efficientnet_lite0`, once per process."""
    return load_efficientnet_lite0()


def clear_caches() -> None:
    """Drop every model and tokenizer loaded so far (the memo caches belong to their memories and go with them)."""
    for cache in (cached_language_model, cached_tokenizer, cached_clip, cached_efficientnet_lite0):
        cache.cache_clear()


class MemoCache:
    """Bounded LRU map from one input's bytes to what was computed for it. Partial views repeat a lot in grid
    worlds, so most steps skip the retriever (or image encoder) entirely; `take_hit_rate` says how often."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[bytes, tuple[torch.Tensor, ...]] = OrderedDict()
        self.hits = self.misses = 0

    def __call__(
        self, inputs: torch.Tensor, compute: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
    ) -> tuple[torch.Tensor, ...]:
        """Per row of `inputs`, the cached result or `compute` of the rows not cached (one batched call)."""
        rows = np.ascontiguousarray(inputs.cpu().numpy())
        keys = [row.tobytes() for row in rows]
        found: list[tuple[torch.Tensor, ...] | None] = []
        for key in keys:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            found.append(entry)
        missing = [i for i, entry in enumerate(found) if entry is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        # Each distinct new input is computed once, even when several environments show it in the same step.
        first_of: dict[bytes, int] = {}
        for i in missing:
            first_of.setdefault(keys[i], i)
        if first_of:
            computed = compute(inputs[list(first_of.values())])
            fresh = {key: tuple(t[j].clone() for t in computed) for j, key in enumerate(first_of)}
            for key, entry in fresh.items():
                self.entries[key] = entry
                if len(self.entries) > self.capacity:
                    self.entries.popitem(last=False)
            for i in missing:
                found[i] = fresh[keys[i]]
        return tuple(torch.stack(parts) for parts in zip(*found, strict=True))  # type: ignore[arg-type]

    def metrics(self) -> dict[str, float]:
        """{"memo_hit_rate": ...} since the last call, or {} when there were no lookups; resets the counters."""
        rate = self.take_hit_rate()
        return {} if rate is None else {"memo_hit_rate": rate}

    def take_hit_rate(self) -> float | None:
        """Hits / lookups since the last call (None if there were none); resets the counters."""
        total = self.hits + self.misses
        rate = self.hits / total if total else None
        self.hits = self.misses = 0
        return rate
