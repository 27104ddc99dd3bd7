"""Environments: one module per suite behind `make_env` / `make_vec_env`.

Every environment shelm trains on yields uint8 HxWxC images and takes discrete actions. Suites:
- `minigrid`: every MiniGrid and BabyAI id, as the agent's RGB partial view (56x56x3 at tile size 8);
- `random_maze`: `shelm/RandomMaze-v0`, the HELM paper's random maze (9x9x3 egocentric crop);
- any other registered gymnasium id whose observation is a uint8 image Box and whose actions are Discrete.
Vector envs reset finished episodes in the same step (the final observation goes to `info["final_obs"]`),
so the trainer never sees a dummy transition between episodes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from shelm.envs import minigrid as minigrid_suite
from shelm.envs import random_maze  # noqa: F401  (registers shelm/RandomMaze-v0)
from shelm.errors import ShelmError

RANDOM_MAZE_ID = "shelm/RandomMaze-v0"


def suite_of(env_id: str) -> str:
    if minigrid_suite.handles(env_id):
        return "minigrid"
    if env_id == RANDOM_MAZE_ID:
        return "random_maze"
    return "gymnasium"


def list_envs() -> list[tuple[str, str]]:
    """(id, suite) for every id shelm knows to work."""
    return [(RANDOM_MAZE_ID, "random_maze")] + [(i, "minigrid") for i in minigrid_suite.env_ids()]


def _check_spaces(env_id: str, env: gym.Env) -> None:
    obs, act = env.observation_space, env.action_space
    if not (isinstance(obs, gym.spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) == 3):
        env.close()
        raise ShelmError(
            f"env '{env_id}' observes {obs}, not a uint8 HxWxC image; wrap it to return RGB frames "
            "(e.g. gymnasium's AddRenderObservation) and register the wrapped id"
        )
    if not isinstance(act, gym.spaces.Discrete):
        env.close()
        raise ShelmError(f"env '{env_id}' has actions {act}; shelm's agents need a Discrete action space")


def make_env(env_id: str, tile_size: int = 8, render_mode: str | None = None) -> gym.Env:
    """One environment of any supported suite, with its spaces checked."""
    if suite_of(env_id) == "minigrid":
        import minigrid  # noqa: F401

    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ShelmError(f"unknown env '{env_id}'; {hint}`shelm envs` lists the available ids")
    if suite_of(env_id) == "minigrid":
        env = minigrid_suite.make(env_id, tile_size=tile_size, render_mode=render_mode)
    else:
        # Only pass render_mode when asked: not every env's constructor accepts it.
        env = gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))
    _check_spaces(env_id, env)
    return env


def make_vec_env(
    env_id: str, n_envs: int, vectorization: str = "sync", tile_size: int = 8, render_mode: str | None = None
) -> gym.vector.VectorEnv:
    """`n_envs` copies of `env_id`; seed them with `reset(seed=s)` (copy i gets s + i)."""
    make_env(env_id, tile_size=tile_size).close()  # fail fast, in this process, with a clear error
    thunks: list[Callable[[], gym.Env]] = [
        lambda: make_env(env_id, tile_size=tile_size, render_mode=render_mode) for _ in range(n_envs)
    ]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
