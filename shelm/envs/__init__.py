"""Environments: one module per suite behind `make_env` / `make_vec_env`.

Every environment shelm trains on yields uint8 HxWxC images and takes discrete actions. Suites:
- `minigrid`: every MiniGrid and BabyAI id, as the agent's RGB partial view (56x56x3 at tile size 8);
- `random_maze`: `shelm/RandomMaze-v0`, the HELM paper's random maze (9x9x3 egocentric crop);
- `procgen` (extra): `procgen/GAME-MODE`, 64x64x3, natively batched; the papers used MODE=memory;
- `miniworld` (extra): `MiniWorld-*`, 60x80x3 first-person 3D frames, rendered headless;
- `memory_gym` (extra): Mortar Mayhem, Mystery Path, Searing Spotlights, 84x84x3;
- any other registered gymnasium id whose observation is a uint8 image Box and whose actions are Discrete.
Avalon and DeepMind Lab (Psychlab) cannot be installed from the package registries: asking for them says why.
Vector envs reset finished episodes in the same step (the final observation goes to `info["final_obs"]`),
so the trainer never sees a dummy transition between episodes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from shelm.envs import memory_gym as memory_gym_suite
from shelm.envs import minigrid as minigrid_suite
from shelm.envs import miniworld as miniworld_suite
from shelm.envs import procgen as procgen_suite
from shelm.envs import random_maze  # noqa: F401  (registers shelm/RandomMaze-v0)
from shelm.errors import ShelmError

RANDOM_MAZE_ID = "shelm/RandomMaze-v0"
EXTRA_SUITES = {"miniworld": miniworld_suite, "memory_gym": memory_gym_suite}  # gymnasium ids after an import

# The papers' other suites that no package registry can provide, and what each would need.
UNAVAILABLE = {
    "avalon": (
        "Avalon downloads its Godot game-engine binary from GitHub at run time (and pins gym 0.25.2); machines "
        "without internet cannot run it, so shelm does not support it"
    ),
    "dmlab": (
        "DeepMind Lab (and its Psychlab tasks) has no wheel on PyPI and its Bazel build fetches sources from the "
        "internet; build it from github.com/google-deepmind/lab on a connected machine, then register a gymnasium "
        "wrapper that returns uint8 RGB frames and pass its id"
    ),
}


def suite_of(env_id: str) -> str:
    if minigrid_suite.handles(env_id):
        return "minigrid"
    if env_id == RANDOM_MAZE_ID:
        return "random_maze"
    if procgen_suite.handles(env_id):
        return "procgen"
    if miniworld_suite.handles(env_id):
        return "miniworld"
    if memory_gym_suite.handles(env_id):
        return "memory_gym"
    return "gymnasium"


def suites() -> list[tuple[str, bool, str]]:
    """(suite, installed, how to get it) for every suite of the papers."""
    return [
        ("minigrid", True, "core dependency"),
        ("random_maze", True, "built in"),
        ("procgen", procgen_suite.installed(), "pip install -e '.[procgen]'"),
        ("miniworld", miniworld_suite.installed(), "pip install -e '.[miniworld]'"),
        ("memory_gym", memory_gym_suite.installed(), "pip install -e '.[memory-gym]'"),
        *((name, False, why) for name, why in UNAVAILABLE.items()),
    ]


def list_envs() -> list[tuple[str, str]]:
    """(id, suite) for every id shelm knows to work with what is installed."""
    ids = [(RANDOM_MAZE_ID, "random_maze")] + [(i, "minigrid") for i in minigrid_suite.env_ids()]
    ids += [(i, "procgen") for i in procgen_suite.env_ids()] if procgen_suite.installed() else []
    ids += [(i, "miniworld") for i in miniworld_suite.env_ids()] if miniworld_suite.installed() else []
    ids += [(i, "memory_gym") for i in memory_gym_suite.env_ids()] if memory_gym_suite.installed() else []
    return ids


def _refuse_unavailable(env_id: str) -> None:
    lowered = env_id.lower()
    for name, why in UNAVAILABLE.items():
        if lowered.startswith(name) or f"/{name}" in lowered or (name == "dmlab" and "psychlab" in lowered):
            raise ShelmError(f"env '{env_id}': {why}")


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
    suite = suite_of(env_id)
    if suite == "procgen":
        return procgen_suite.ProcgenEnv(env_id, render_mode)
    _refuse_unavailable(env_id)
    if suite == "minigrid":
        import minigrid  # noqa: F401
    elif suite in EXTRA_SUITES:
        EXTRA_SUITES[suite].register(env_id)

    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ShelmError(f"unknown env '{env_id}'; {hint}`shelm envs` lists the available ids")
    if suite == "minigrid":
        env = minigrid_suite.make(env_id, tile_size=tile_size, render_mode=render_mode)
    elif suite in EXTRA_SUITES:
        env = EXTRA_SUITES[suite].make(env_id, render_mode)
    else:
        # Only pass render_mode when asked: not every env's constructor accepts it.
        env = gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))
    _check_spaces(env_id, env)
    return env


def make_vec_env(
    env_id: str, n_envs: int, vectorization: str = "sync", tile_size: int = 8, render_mode: str | None = None
) -> gym.vector.VectorEnv:
    """`n_envs` copies of `env_id`; seed them with `reset(seed=s)` (copy i gets s + i; Procgen draws its games'
    seeds from s)."""
    suite = suite_of(env_id)
    if suite == "procgen" and render_mode is None:
        return procgen_suite.ProcgenVecEnv(env_id, n_envs)  # its own batching; recording needs per-copy renders
    make_env(env_id, tile_size=tile_size).close()  # fail fast, in this process, with a clear error
    thunks: list[Callable[[], gym.Env]] = [
        lambda: make_env(env_id, tile_size=tile_size, render_mode=render_mode) for _ in range(n_envs)
    ]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vectorization == "async":
        # MiniWorld's OpenGL context does not survive a fork; spawn is also the safe choice for any suite.
        context = "spawn" if suite == "miniworld" else None
        return gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode, context=context)
    return gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)
