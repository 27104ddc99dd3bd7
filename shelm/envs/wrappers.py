"""Wrappers shared by the suites, and the observation preprocessing every env gets (`ObsPreprocessing`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

# `obs_resize="auto"`: frames whose larger side exceeds this many pixels are resized to `AUTO_SIZE`, Procgen's
# 64x64: the largest frames the papers trained their CNN on (HELM's Procgen experiments), and the size DreamerV2
# trains Atari at. At ALE's 210x160 the CNN's linear layer alone would hold 56.6M weights; at 64x64 the whole CNN
# does 12.2M multiply-adds a frame, about SB3's NatureCNN on its 84x84x4 Atari stacks (9.4M). Every built-in
# suite's frames are at most 84 pixels a side (MiniGrid's at the papers' tile size 56, Procgen's 64, MiniWorld's
# 60x80, Memory Gym's 84), so they stay as the env makes them.
AUTO_LARGER_THAN = 96
AUTO_SIZE = (64, 64)


@dataclass(frozen=True)
class ObsPreprocessing:
    """How an env's frames are prepared before the agent and its memory see them: resized, then reduced to grey, then
    stacked (the `obs_resize`, `obs_grayscale` and `obs_frame_stack` settings, `shelm.envs.EnvSettings.preprocess`).
    Each step uses gymnasium's own wrapper (ResizeObservation, GrayscaleObservation with keep_dim,
    FrameStackObservation), so that frames are what a gymnasium user would get from them; the stack is then laid
    along the channels, which keeps every observation a uint8 HxWxC image."""

    resize: tuple[int, int] | str | None = "auto"
    """(height, width); 'auto' (see `AUTO_LARGER_THAN`); None keeps the env's size."""
    grayscale: bool = False
    frame_stack: int = 1

    def size_for(self, height: int, width: int, sized_by_setting: bool) -> tuple[int, int] | None:
        """The size frames of height x width are resized to, None where they keep theirs. `sized_by_setting`: a
        setting of the suite chose the frame size (MiniGrid's tile size), which 'auto' respects."""
        if self.resize == "auto":
            large = max(height, width) > AUTO_LARGER_THAN and not sized_by_setting
            return AUTO_SIZE if large else None
        if self.resize is None or tuple(self.resize) == (height, width):
            return None
        return tuple(self.resize)  # type: ignore[return-value]

    def changes(self, space: gym.spaces.Box, sized_by_setting: bool) -> bool:
        """Whether frames of `space` come out of `apply` other than they went in."""
        height, width = space.shape[:2]
        return self.grayscale or self.frame_stack > 1 or self.size_for(height, width, sized_by_setting) is not None

    def apply(self, env: gym.Env, sized_by_setting: bool) -> gym.Env:
        """`env` (uint8 HxWxC frames) with its frames resized, grey and stacked as asked; unchanged where nothing is."""
        height, width, channels = env.observation_space.shape
        size = self.size_for(height, width, sized_by_setting)
        if size is not None:
            env = gym.wrappers.ResizeObservation(env, size)
        if self.grayscale and channels not in (1, 3):
            raise ValueError(f"obs_grayscale takes RGB frames, these have {channels} channels")
        if self.grayscale and channels == 3:
            env = gym.wrappers.GrayscaleObservation(env, keep_dim=True)
        if self.frame_stack > 1:
            env = StackedOnChannels(gym.wrappers.FrameStackObservation(env, self.frame_stack))
        return env


class StackedOnChannels(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """FrameStackObservation's [N, H, W, C] stack laid along the channels as one [H, W, N*C] image, oldest frame first
    (the newest frame is the last C channels), so that every agent and memory still receives an HxWxC image."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        stack, height, width, channels = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, (height, width, stack * channels), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        stack, height, width, channels = observation.shape
        return np.ascontiguousarray(np.moveaxis(observation, 0, 2)).reshape(height, width, stack * channels)


class ActionSubset(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """An env whose agent chooses among some of its actions only (the `env_actions` setting): the agent's action i is
    the env's action `env_actions[i]`. MiniGrid's Memory task, for one, needs only its first three actions (turn left,
    turn right, forward); its other four do nothing there, and an agent that explores them wastes its steps."""

    def __init__(self, env: gym.Env, env_actions: tuple[int, ...]):
        gym.utils.RecordConstructorArgs.__init__(self, env_actions=env_actions)
        super().__init__(env)
        self.env_actions = tuple(env_actions)
        self.action_space = gym.spaces.Discrete(len(self.env_actions))

    def action(self, action: Any) -> int:
        return self.env_actions[int(action)]


class FixedLayouts(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """An env whose episodes are drawn from `n_layouts` fixed layouts (the `env_layouts` setting): every reset seeds
    the env with a seed drawn uniformly from 0 .. n_layouts - 1, so that an env that generates its layout from its
    seed (MiniGrid's, for one) plays only those. The draws come from a generator that a seeded reset seeds, so a
    seeded run draws the same layouts in the same order."""

    def __init__(self, env: gym.Env, n_layouts: int):
        gym.utils.RecordConstructorArgs.__init__(self, n_layouts=n_layouts)
        super().__init__(env)
        self.n_layouts = n_layouts
        self.layouts = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.layouts = np.random.default_rng(seed)
        return self.env.reset(seed=int(self.layouts.integers(self.n_layouts)), options=options)


def env_action_indices(env: gym.Env, n: int) -> list[int]:
    """The env's own index of each of the agent's `n` actions: through an `ActionSubset` where `env` has one, else
    the same index."""
    current: gym.Env | None = env
    while current is not None:
        if isinstance(current, ActionSubset):
            return list(current.env_actions)
        current = getattr(current, "env", None)
    return list(range(n))


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
