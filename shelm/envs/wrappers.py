"""Wrappers shared by the suites."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class FrameFromDict(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """A dict observation reduced to its image under `key` (the papers' agents see the frame only)."""

    def __init__(self, env: gym.Env, key: str):
        gym.utils.RecordConstructorArgs.__init__(self, key=key)
        super().__init__(env)
        self.key = key
        self.observation_space = env.observation_space[key]

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        return observation[self.key]
