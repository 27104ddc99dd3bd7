"""HELM's memory: FrozenHopfield maps each observation to one LM input vector; the frozen LM remembers."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.weights import LoadedLanguageModel, load_language_model


@functools.lru_cache(maxsize=2)
def cached_language_model(lm: str, dtype: str, layers: int) -> LoadedLanguageModel:
    """One load per process: training and the evaluation after it share the frozen weights."""
    return load_language_model(lm, dtype, layers)


class HELMMemory:
    def __init__(self, lm: LanguageModelMemory, hopfield: FrozenHopfield, identity: dict[str, Any]):
        self.lm, self.hopfield = lm, hopfield
        self.output_dim = lm.output_dim
        self._identity = identity

    def reset(self, n_envs: int) -> None:
        self.lm.reset(n_envs)

    def step(self, obs: torch.Tensor, episode_start: torch.Tensor) -> torch.Tensor:
        return self.lm.step(self.hopfield(obs).unsqueeze(1), episode_start)

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.hopfield.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.hopfield.load_state_dict(state)


def build_helm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> HELMMemory:
    loaded = cached_language_model(config.lm, config.lm_dtype, config.lm_layers)
    lm = LanguageModelMemory(loaded.model.to(device), config.mem_len)
    hopfield = FrozenHopfield(lm.embedding_matrix, math.prod(obs_shape), config.beta, seed=config.seed)
    identity = {
        "kind": "helm",
        "lm": config.lm,
        "lm_sha256": loaded.sha256,
        "lm_layers": loaded.layers,
        "lm_dtype": config.lm_dtype,
        "mem_len": config.mem_len,
        "beta": config.beta,
    }
    return HELMMemory(lm, hopfield, identity)
