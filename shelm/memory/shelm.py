"""SHELM's memory (SPEC section 4): the k words that best describe each observation, fed to the frozen LM.

Per step and environment: the retriever scores its vocabulary, the top k items (most similar first) are
looked up as LM input vectors and fed as k new positions of that environment's LM memory. The window holds
mem_len steps, i.e. mem_len * k positions, so it spans the same number of steps whatever k is. The memory is
text a person can read: `last_words` returns the words the last step stored, with their scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory.helm import frozen_language_model
from shelm.memory.retrieval import MemoCache, Retriever, item_vectors, top_k
from shelm.memory.weights import load_tokenizer
from shelm.precision import autocast

if TYPE_CHECKING:
    from shelm.memory.weights import LMMemory


def build_retriever(config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device) -> Retriever:
    """The retriever named by config.retriever ('auto' is resolved with the config)."""
    from shelm.envs import suite_of

    name = config.retriever
    if name == "symbolic":
        if suite_of(config.env_id) != "minigrid":
            raise ShelmError(
                f"retriever=symbolic reads MiniGrid/BabyAI's symbolic view, which env '{config.env_id}' does not "
                "have; use retriever=imagenet or retriever=clip"
            )
        from shelm.memory.symbolic import SymbolicRetriever

        return SymbolicRetriever()
    if name == "imagenet":
        from shelm.memory.imagenet import ImageNetRetriever

        return ImageNetRetriever(device)
    if name == "clip":
        from shelm.memory.clip import CLIPRetriever, parse_templates

        templates = parse_templates(config.prompt_templates)
        return CLIPRetriever(config.clip_model, lm_tokenizer, lm_sha256, templates, device)
    raise ShelmError(f"retriever={name!r} is not one of symbolic, imagenet, clip")


class SHELMMemory:
    def __init__(
        self,
        lm: LMMemory,
        retriever: Retriever,
        vectors: torch.Tensor,
        k: int,
        memo_size: int,
        identity: dict[str, Any],
    ):
        self.lm, self.retriever, self.vectors, self.k = lm, retriever, vectors, k
        self.output_dim = lm.output_dim
        self.window_steps = lm.mem_len // k
        self.memo = MemoCache(memo_size)
        self._identity = identity
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self, n_envs: int) -> None:
        self.lm.reset(n_envs)
        self._last = None

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
            with autocast(self.lm.device, self._identity["lm_dtype"]):  # the retriever runs in the LM's precision
                return top_k(self.retriever.scores(x).float(), self.k, self.retriever.pad_item)

        ids, scores = self.memo(inputs, compute)
        return ids.to(self.vectors.device), scores

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        return self.lm.step(self.lm_inputs(obs, info), episode_start)

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        ids, scores = self.retrieve(obs, info)
        self._last = (ids, scores)
        return self.vectors[ids]

    def last_words(self) -> list[list[tuple[str, float]]]:
        if self._last is None:
            return []
        ids, scores = self._last
        vocabulary = self.retriever.vocabulary
        return [
            [(vocabulary[i], float(s)) for i, s in zip(row, values, strict=True)]
            for row, values in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    def metrics(self) -> dict[str, float]:
        return {**self.memo.metrics(), **self.lm.metrics()}

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # nothing random: the retriever and the LM are rebuilt identically from the identity

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"unexpected tensors {sorted(state)}")


def build_shelm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> SHELMMemory:
    loaded, lm, dtype = frozen_language_model(config, device, config.mem_len * config.topk, config.topk)
    tokenizer = load_tokenizer(config.lm)
    retriever = build_retriever(config, tokenizer, loaded.sha256, device)
    if config.topk > len(retriever.vocabulary):
        raise ShelmError(
            f"topk={config.topk} exceeds the {len(retriever.vocabulary)} words of retriever={retriever.name}; "
            f"choose 1..{len(retriever.vocabulary)}"
        )
    vectors = item_vectors(retriever.lm_tokens(tokenizer), lm.embedding_matrix.detach()).to(lm.dtype)
    identity = {
        "kind": "shelm",
        "lm": config.lm,
        "lm_sha256": loaded.sha256,
        "lm_layers": loaded.layers,
        "lm_dtype": dtype,
        "mem_len": config.mem_len,
        "topk": config.topk,
        **retriever.identity(),
    }
    return SHELMMemory(lm, retriever, vectors, config.topk, config.memo_size, identity)
