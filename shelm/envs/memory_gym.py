"""Memory Gym (optional extra `memory-gym`): Mortar Mayhem, Mystery Path and Searing Spotlights, 84x84x3 frames.

The games draw with pygame; shelm selects SDL's dummy video and audio drivers before the first import, so they
run headless. The package pins an old gymnasium (0.29) that it does not need: it is installed with `--no-deps`
and runs on shelm's gymnasium (tested). Adjustments, so every task fits shelm's agents:
- the non-grid tasks move with MultiDiscrete([3, 3]) (horizontal x vertical): flattened to Discrete(9);
- Mortar Mayhem B observes a dict (frame + command vector): the frame is kept;
- the episode's `success` (reported at its end) becomes `is_success`, which shelm's success rate reads;
- closing one env leaves pygame running: the games share the process's one pygame display, and their own
  `close()` quits pygame under every other env of the process (e.g. the training envs, when HELMv2's
  calibration envs close).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import gymnasium as gym
import numpy as np

from shelm.envs.registry import Suite, gym_make
from shelm.envs.wrappers import FrameFromDict
from shelm.errors import ShelmError

GAMES = ("MortarMayhem", "MysteryPath", "SearingSpotlights")
IMAGE_KEY = "visual_observation"


def handles(env_id: str) -> bool:
    return env_id.removeprefix("Endless-").startswith(GAMES)


def installed() -> bool:
    return importlib.util.find_spec("memory_gym") is not None


def register(env_id: str | None = None) -> None:
    """Import memory_gym (which registers its ids) with pygame headless."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import memory_gym  # noqa: F401
    except ImportError:
        what = f"env '{env_id}'" if env_id else "Memory Gym"
        raise ShelmError(
            f"{what} needs Memory Gym: pip install -e '.[memory-gym]' && pip install --no-deps memory-gym==1.0.2"
        ) from None


def env_ids() -> list[str]:
    register()
    return sorted(k for k in gym.registry if handles(k))


class FlatDiscrete(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """MultiDiscrete([a, b, ...]) as one Discrete(a * b * ...), index i meaning np.unravel_index(i, nvec)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.nvec = tuple(int(n) for n in env.action_space.nvec)
        self.action_space = gym.spaces.Discrete(int(np.prod(self.nvec)))

    def action(self, action: Any) -> np.ndarray:
        return np.array(np.unravel_index(int(action), self.nvec), dtype=np.int64)


class SuccessInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Memory Gym reports `success` (0/1) when an episode ends; shelm reads `is_success`. Closing keeps pygame up
    for the other envs of the process (see the module docstring)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def close(self) -> None:
        pass

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and "success" in info:
            info = {**info, "is_success": bool(info["success"])}
        return obs, reward, terminated, truncated, info


def make(env_id: str, render_mode: str | None = None, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    register(env_id)
    env = gym_make(env_id, render_mode, env_kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FrameFromDict(env, IMAGE_KEY)
    if isinstance(env.action_space, gym.spaces.MultiDiscrete):
        env = FlatDiscrete(env)
    return SuccessInfo(env)


SUITE = Suite(
    "memory_gym",
    handles=handles,
    ids=env_ids,
    make=lambda env_id, tile_size, render_mode, env_kwargs=None: make(env_id, render_mode, env_kwargs),
    installed=installed,
    install_hint="pip install -e '.[memory-gym]'",
)
