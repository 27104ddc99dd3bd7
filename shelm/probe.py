"""What a run knows of its environment before it trains: one env, built once and looked at once.

`shelm.envs.probe_env` builds the run's env as training will, resets it with the run's seed and plays it briefly at
random; the `EnvProbe` it returns keeps what the memories and the pre-flight checks read (the spaces, the first
reset's info and the texts in it, the distinct frames seen), so that none of them builds an env of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

RANDOM_PLAY_LANES = 4
"""How many episodes streams the probe's random play runs, one after another, each from its own seed."""
RANDOM_PLAY_STEPS = 32
"""The observations each lane of the random play yields (its reset's and those of the steps after it)."""


@dataclass(frozen=True)
class EnvProbe:
    """One look at a run's environment: its spaces, the info of its first reset, and frames of random play."""

    env_id: str
    observation_space: gym.spaces.Box
    """The frames the agent sees (uint8 HxWxC, preprocessed as the run's settings say)."""
    action_space: gym.spaces.Discrete
    reset_info: Mapping[str, Any]
    """The info of the env's first reset with the run's seed: the keys its steps carry beside the frame."""
    frames: np.ndarray
    """[M, H, W, C] uint8: the distinct frames of short random play seeded by the run's seed (`shelm.envs.probe_env`),
    in sorted order; e.g. HELMv2 fixes the statistics of its image features on them."""

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return tuple(self.observation_space.shape)  # type: ignore[return-value]

    @property
    def n_actions(self) -> int:
        return int(self.action_space.n)

    @property
    def text_keys(self) -> tuple[str, ...]:
        """The keys of the first reset's info whose values are text (an instruction can be read from one)."""
        return tuple(sorted(key for key, value in self.reset_info.items() if isinstance(value, str)))

    def gives(self, key: str) -> bool:
        """Whether the env's info carries `key` (as its first reset's does)."""
        return key in self.reset_info
