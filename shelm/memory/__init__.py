"""The frozen side of an agent: modules that turn each observation into a vector without being trained.

Every memory implements `FrozenMemory`: the HELM family's language-model memories (shelm.memory.base) and the
oracle control. The trainer calls `step` exactly once per environment step during the rollout, under
`torch.no_grad()`, and stores its output in the rollout buffer; the PPO update reads the stored vectors and never
calls the memory again. What only some memories can do is a capability of its own, asked for where it is used: a
memory that says in words what its last step took in is a `ReadableMemory` (`shelm inspect` shows the words); a
language-model memory is a `shelm.memory.base.LanguageModelMemory` (its inputs, window and attention, which the
analyses read). An agent's spec declares both (`AgentSpec.words`, `AgentSpec.has_language_model`).

A memory is built from the run's config and its `EnvProbe` (`shelm.probe`): what the environment gives is read
from the probe, so no memory builds an environment of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch


class FrozenMemory(Protocol):
    """What every memory offers the trainer, the checkpoints and the memory pre-flight."""

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


@runtime_checkable
class ReadableMemory(FrozenMemory, Protocol):
    """A memory that can say in words what its last `step` took in (the agent's spec names them: `words`)."""

    def last_words(self) -> list[list[tuple[str, float]]]:
        """Per environment, what the last `step` put into the memory, as text with a score: SHELM's retrieved words,
        HELM's and HELMv2's vocabulary token nearest to their input vector, the oracle's cue. For inspection only;
        the training loop never decodes text."""
        ...


def release_models() -> None:
    """Drop the frozen models this process keeps cached for reuse: a sweep's parent loads them only to check its
    trials, which then run in other processes."""
    from shelm.memory.caches import clear_caches  # here, not above: it imports the model libraries

    clear_caches()
