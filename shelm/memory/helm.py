"""HELM's memory: FrozenHopfield maps each observation to one LM input vector; the frozen LM remembers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.memory.base import FrozenLanguageModel, LanguageModelMemoryBase, frozen_language_model
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.precision import DTYPES
from shelm.probe import EnvProbe


class HELMMemory(LanguageModelMemoryBase[torch.Tensor]):
    """FrozenHopfield's input vector per observation, one LM position per step; `last` is the last observation."""

    kind = "helm"

    def __init__(self, frozen: FrozenLanguageModel, hopfield: FrozenHopfield, memo_size: int):
        super().__init__(frozen, memo_size)
        self.hopfield = hopfield

    @property
    def beta(self) -> float:
        """FrozenHopfield's inverse temperature, as trained."""
        return self.hopfield.beta

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        self.last = obs
        return self.memo(obs, lambda x: (self.hopfield(x),))[0].unsqueeze(1)

    def last_words(self) -> list[list[tuple[str, float]]]:
        """The token FrozenHopfield weights most for each environment's last observation, with that weight."""
        if self.last is None:
            return []
        weights = torch.softmax(self.hopfield.beta * self.hopfield.similarities(self.last), dim=-1)
        best, ids = weights.max(-1)
        return self.token_words(ids, best)

    def own_identity(self) -> dict[str, Any]:
        return {"beta": self.hopfield.beta}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.hopfield.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.hopfield.load_state_dict(state)

    def queries(self, obs: torch.Tensor) -> torch.Tensor:
        """FrozenHopfield's unit query P o / |P o| per observation (before the similarity to the vocabulary)."""
        return self.hopfield.queries(obs)

    def inputs_at_betas(self, obs: torch.Tensor, betas: Iterable[float]) -> dict[float, torch.Tensor]:
        """The LM input vectors of obs as FrozenHopfield would give them at other betas (same projection)."""
        return self.hopfield.inputs_at_betas(obs, betas)


def build_helm_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> HELMMemory:
    frozen = frozen_language_model(config, device)
    embeddings = frozen.step.embedding_matrix
    hopfield = FrozenHopfield(embeddings, math.prod(probe.obs_shape), config.beta, config.seed, DTYPES[frozen.dtype])
    return HELMMemory(frozen, hopfield, config.memo_size)
