"""The frozen side of an agent: modules that turn each observation into a vector without being trained.

The HELM family's language-model memories (shelm.memory.base) and the oracle control implement `FrozenMemory`.
The trainer calls `step` exactly once per environment step during the rollout, under `torch.no_grad()`, and
stores its output in the rollout buffer; the PPO update reads the stored vectors and never calls the memory again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch


class FrozenMemory(Protocol):
    output_dim: int
    """Width M of the vector returned per environment."""

    def state_bytes(self, n_envs: int) -> int:
        """Bytes the per-environment memories of `n_envs` environments will take (e.g. the LM's key/value windows);
        the run's memory pre-flight asks it before anything is allocated."""
        ...

    def reset(self, n_envs: int) -> None:
        """Forget everything and prepare per-environment memories for `n_envs` environments."""

    window_steps: int
    """How many past steps of an episode the memory holds (its LM window, in environment steps)."""

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """obs uint8 [N, H, W, C]; episode_start bool [N] empties those environments' memories first; info is
        the vector env's info of this step (the symbolic retriever reads MiniGrid's symbolic view from it).

        Returns [N, M]: the memory's summary of each environment's episode up to and including obs.
        """
        ...

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        """[N, k, d]: the k LM input vectors `step` feeds for obs (what the frozen mapping makes of it), for the
        analyses, which compare them across observations and replay them through the LM. `last_words` then
        describes this call."""
        ...

    def last_words(self) -> list[list[tuple[str, float]]]:
        """Per environment, what the last `step` put into the LM's memory, as text with a score: SHELM's
        retrieved words, or for HELM and HELMv2 the vocabulary token nearest to their input vector. For
        inspection only; the training loop never decodes text."""
        ...

    def metrics(self) -> dict[str, float]:
        """Counters since the last call (e.g. the retrieval cache's hit rate), logged with every iteration."""
        ...

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this memory identically (model source, weight hash, settings);
        loading a checkpoint refuses a memory whose identity differs."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Frozen tensors drawn at construction (e.g. random projections), saved with every checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def release_models() -> None:
    """Drop the frozen models this process keeps cached for reuse: a sweep's parent loads them only to check its
    trials, which then run in other processes."""
    from shelm.memory.caches import clear_caches  # here, not above: it imports the model libraries

    clear_caches()
