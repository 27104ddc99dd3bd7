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


class TextsIntoInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copies the text entries `keys` of a Dict observation (e.g. MiniGrid's `mission`) into the info of every
    reset and step, so that they survive a wrapper above that keeps only the image. A language memory reads an
    episode's instruction from there (the `instruction` setting)."""

    def __init__(self, env: gym.Env, keys: tuple[str, ...]):
        gym.utils.RecordConstructorArgs.__init__(self, keys=keys)
        super().__init__(env)
        self.keys = tuple(keys)

    def _with_texts(self, observation: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        return {**info, **{key: observation[key] for key in self.keys}}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._with_texts(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_texts(obs, info)


def text_entries(space: gym.spaces.Dict) -> tuple[str, ...]:
    """The keys of a Dict observation's text entries."""
    return tuple(key for key, sub in space.spaces.items() if isinstance(sub, gym.spaces.Text))
