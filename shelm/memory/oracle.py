"""The oracle-memory control: a "memory" that is the cue the episode showed, read from the environment's state.

No agent can have a better memory of a MiniGrid Memory episode than the cue itself: which object (key or ball)
lies in the start room. This module hands that cue to the same trainable CNN and actor-critic heads as the HELM
family, as a one-hot vector over MiniGrid's object types, at every step of the episode. Whatever PPO reaches with
it is what shelm's trainer and heads reach when the memory is perfect. So when a language-model memory stays at
chance while this control learns, the failure lies in that memory, not in PPO or the heads.

It is a control, not a method: the cue comes from the environment (`info["memory_cue"]`, which shelm's
MiniGrid wrapper adds for the Memory tasks), not from the observations. Every page labels it an oracle. It is no
language model; it says in words what it was told (`last_words`, 'cue: key'), which `shelm inspect` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.info_keys import MEMORY_CUE
from shelm.probe import EnvProbe

# MiniGrid's object types (minigrid.core.constants.OBJECT_TO_IDX): the one-hot's width.
N_OBJECT_TYPES = 11
CUE_NAMES = {5: "key", 6: "ball"}


class OracleCueMemory:
    """[N, 11]: the one-hot of the episode's cue object type, the same at every step of the episode."""

    output_dim = N_OBJECT_TYPES
    window_steps = 0  # it remembers nothing: it is told

    def __init__(self, device: torch.device):
        self.device = device
        self._last: torch.Tensor | None = None

    def state_bytes(self, n_envs: int) -> int:
        return 0  # it keeps nothing per environment

    def reset(self, n_envs: int) -> None:
        self._last = None

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        if info is None or MEMORY_CUE not in info:
            raise ShelmError(
                "the oracle-memory agent needs an environment that names its cue in info['memory_cue'] "
                "(MiniGrid's Memory tasks, e.g. --env MiniGrid-MemoryS11-v0)"
            )
        cues = torch.as_tensor(np.asarray(info[MEMORY_CUE], dtype=np.int64).reshape(-1))
        self._last = cues
        return torch.nn.functional.one_hot(cues, N_OBJECT_TYPES).float().to(self.device)

    def last_words(self) -> list[list[tuple[str, float]]]:
        """The cue each environment's last step was told, as 'cue: key' with score 1."""
        if self._last is None:
            return []
        return [[(f"cue: {CUE_NAMES.get(int(cue), str(int(cue)))}", 1.0)] for cue in self._last]

    def metrics(self) -> dict[str, float]:
        return {}

    def identity(self) -> dict[str, Any]:
        return {"kind": "oracle-cue", "cue": MEMORY_CUE, "width": N_OBJECT_TYPES}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ShelmError(f"the oracle-memory agent has no frozen tensors; the checkpoint has {sorted(state)}")


def build_oracle_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> OracleCueMemory:
    """The control, after checking that the run's environment names its cue (refused in one line otherwise)."""
    if not probe.gives(MEMORY_CUE):
        raise ShelmError(
            f"--agent oracle: '{config.env_id}' does not name its cue; the oracle-memory control runs on MiniGrid's "
            "Memory tasks (e.g. --env MiniGrid-MemoryS11-v0)"
        )
    return OracleCueMemory(device)
