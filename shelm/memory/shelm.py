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
from shelm.memory.imagenet import check_one_frame
from shelm.memory.retrieval import (
    FrameRegion,
    LocatingRetriever,
    Retriever,
    StatefulRetriever,
    frame_regions,
    item_vectors,
    top_k,
)
from shelm.memory.retrievers import build_retriever
from shelm.precision import autocast
from shelm.probe import EnvProbe


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

        # A stateful retriever's words for the same input change as it sees more; it memoizes its own parts.
        ids, scores = compute(inputs) if isinstance(self.retriever, StatefulRetriever) else self.memo(inputs, compute)
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

    def last_word_regions(self, obs: torch.Tensor) -> list[list[FrameRegion | None]] | None:
        """Per environment, the region of its observation each word of `last_words` came from (None for a word that
        no region offered), where the retriever can say (a `LocatingRetriever` that reads the observation); None
        where it cannot. `obs` [N, H, W, C] must be the observations of the last `lm_inputs` call. For reading the
        memory: it changes no state."""
        reads_obs = self.retriever.input_key is None
        if self.last is None or not reads_obs or not isinstance(self.retriever, LocatingRetriever):
            return None
        ids, _ = self.last
        index = self.retriever.word_regions(obs, ids)
        regions = frame_regions(self.retriever.region_boxes(obs.shape[1], obs.shape[2]))
        return [[None if i < 0 else regions[i] for i in row] for row in index.tolist()]

    def own_identity(self) -> dict[str, Any]:
        return {"topk": self.k, **self.retriever.identity()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        if isinstance(self.retriever, StatefulRetriever):
            return {f"retriever.{key}": value for key, value in self.retriever.state_dict().items()}
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if isinstance(self.retriever, StatefulRetriever):
            prefix = "retriever."
            if any(not key.startswith(prefix) for key in state):
                raise ValueError(f"unexpected tensors {sorted(state)}")
            self.retriever.load_state_dict({key.removeprefix(prefix): value for key, value in state.items()})
        else:
            super().load_state_dict(state)

    def metrics(self) -> dict[str, float]:
        metrics = super().metrics()
        if isinstance(self.retriever, StatefulRetriever):
            metrics |= self.retriever.memo.metrics()
        return metrics


def build_shelm_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> SHELMMemory:
    """SHELM's memory, after checking that the environment gives what the retriever reads (refused in one line)."""
    frozen = frozen_language_model(config, device, inputs_per_step=config.topk)
    tokenizer = cached_tokenizer(config.lm)
    retriever = build_retriever(config, tokenizer, frozen.loaded.sha256, device)
    if retriever.input_key is None:  # it reads the observation's pixels
        check_one_frame(config, probe.obs_shape, f"shelm's retriever {retriever.name}")
    elif not probe.gives(retriever.input_key):
        raise ShelmError(
            f"retriever={retriever.name} reads info['{retriever.input_key}'], which env '{config.env_id}' does not "
            "give; use a retriever that reads pixels (retriever=regions, imagenet or clip)"
        )
    if config.topk > len(retriever.vocabulary):
        raise ShelmError(
            f"topk={config.topk} exceeds the {len(retriever.vocabulary)} words of retriever={retriever.name}; "
            f"choose 1..{len(retriever.vocabulary)}"
        )
    embeddings = frozen.step.embedding_matrix.detach()
    vectors = item_vectors(retriever.lm_tokens(tokenizer), embeddings).to(frozen.step.dtype)
    return SHELMMemory(frozen, retriever, vectors, config.memo_size)
