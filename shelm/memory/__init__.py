"""The frozen side of an agent: modules that turn each observation into a vector without being trained.

The HELM family's language-model memories implement `FrozenMemory`. The trainer calls `step` exactly once
per environment step during the rollout, under `torch.no_grad()`, and stores its output in the rollout
buffer; the PPO update reads the stored vectors and never calls the memory again.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class FrozenMemory(Protocol):
    output_dim: int
    """Width M of the vector returned per environment."""

    def reset(self, n_envs: int) -> None:
        """Forget everything and prepare per-environment memories for `n_envs` environments."""

    def step(self, obs: torch.Tensor, episode_start: torch.Tensor) -> torch.Tensor:
        """obs uint8 [N, H, W, C]; episode_start bool [N] empties those environments' memories first.

        Returns [N, M]: the memory's summary of each environment's episode up to and including obs.
        """
        ...

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this memory identically (model source, weight hash, settings);
        loading a checkpoint refuses a memory whose identity differs."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Frozen tensors drawn at construction (e.g. random projections), saved with every checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...
