"""SHELM's memory: the k words that best describe each observation, fed to the frozen LM.

Per step and environment: the retriever (chosen by the `retriever` setting, shelm.memory.retrievers) scores its
vocabulary, the top k items (most similar first) are looked up as LM input vectors and fed as k new positions of
that environment's LM memory. The window holds mem_len steps, i.e. mem_len * k positions, so it spans the same
number of steps whatever k is. The memory is text a person can read: `last_words` returns the words the last step
stored, with their scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory.base import FrozenLanguageModel, LanguageModelMemoryBase, frozen_language_model
from shelm.memory.caches import cached_tokenizer
from shelm.memory.retrieval import Retriever, item_vectors, top_k
from shelm.memory.retrievers import build_retriever
from shelm.precision import autocast


class SHELMMemory(LanguageModelMemoryBase[tuple[torch.Tensor, torch.Tensor]]):
    """The top k retrieved words per observation, k LM positions per step; `last` is their (ids, scores)."""

    kind = "shelm"

    def __init__(self, frozen: FrozenLanguageModel, retriever: Retriever, vectors: torch.Tensor, memo_size: int):
        super().__init__(frozen, memo_size)
        self.retriever, self.vectors, self.k = retriever, vectors, frozen.step.k

    def retrieve(self, obs: torch.Tensor, info: Mapping[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, k] item ids, [N, k] scores), most similar first; repeated inputs come from the memo cache."""
        key = self.retriever.input_key
        if key is None:
            inputs = obs
        elif info is None or key not in info:
            raise ShelmError(f"retriever={self.retriever.name} needs info['{key}'] from the environment; it has none")
        else:
            inputs = torch.as_tensor(info[key])

        def compute(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with autocast(self.lm.device, self.lm_dtype):  # the retriever runs in the LM's precision
                return top_k(self.retriever.scores(x).float(), self.k, self.retriever.pad_item)

        ids, scores = self.memo(inputs, compute)
        return ids.to(self.vectors.device), scores

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        ids, scores = self.retrieve(obs, info)
        self.last = (ids, scores)
        return self.vectors[ids]

    def last_words(self) -> list[list[tuple[str, float]]]:
        if self.last is None:
            return []
        ids, scores = self.last
        vocabulary = self.retriever.vocabulary
        return [
            [(vocabulary[i], float(s)) for i, s in zip(row, values, strict=True)]
            for row, values in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    def own_identity(self) -> dict[str, Any]:
        return {"topk": self.k, **self.retriever.identity()}


def build_shelm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> SHELMMemory:
    frozen = frozen_language_model(config, device, inputs_per_step=config.topk)
    tokenizer = cached_tokenizer(config.lm)
    retriever = build_retriever(config, tokenizer, frozen.loaded.sha256, device)
    if config.topk > len(retriever.vocabulary):
        raise ShelmError(
            f"topk={config.topk} exceeds the {len(retriever.vocabulary)} words of retriever={retriever.name}; "
            f"choose 1..{len(retriever.vocabulary)}"
        )
    embeddings = frozen.step.embedding_matrix.detach()
    vectors = item_vectors(retriever.lm_tokens(tokenizer), embeddings).to(frozen.step.dtype)
    return SHELMMemory(frozen, retriever, vectors, config.memo_size)
