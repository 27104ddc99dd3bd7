"""Procgen (optional extra `procgen`, the `procgen-mirror` wheel): 64x64x3 games, in the papers' memory mode.

Ids are `procgen/GAME-MODE`, e.g. `procgen/maze-memory`. Only caveflyer, dodgeball, heist, jumper, maze and
miner have a memory mode; Procgen checks that with a C++ assertion that aborts the whole process, so the pair is
validated here before any env is built.

Procgen is batched natively (one C++ env runs N games on its own threads): training uses `ProcgenVecEnv`, a
gymnasium VectorEnv over it. Recording (videos, `shelm inspect`) uses one `ProcgenEnv` per copy, which can render.
Procgen resets a finished game itself; the episode's end shows as `first` on the next observation and its
success as `prev_level_complete`. The final frame of an episode is not exposed, so `final_obs` is absent.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from shelm.envs.registry import Suite
from shelm.errors import ShelmError

PREFIX = "procgen/"
GAMES = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
    "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot",
)  # fmt: skip
MEMORY_GAMES = ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner")
MODES = ("easy", "hard", "memory")
N_ACTIONS = 15
FRAME = (64, 64, 3)
SEED_MODULUS = 2**31 - 1  # Procgen seeds are C ints


def handles(env_id: str) -> bool:
    return env_id.startswith(PREFIX)


def env_ids() -> list[str]:
    """The memory-mode games first (the papers' set), then every game in easy and hard."""
    return [f"{PREFIX}{g}-memory" for g in MEMORY_GAMES] + [f"{PREFIX}{g}-{m}" for g in GAMES for m in ("easy", "hard")]


def parse(env_id: str) -> tuple[str, str]:
    """`procgen/maze-memory` -> ("maze", "memory"), refusing pairs that Procgen would abort on."""
    game, _, mode = env_id.removeprefix(PREFIX).rpartition("-")
    if game not in GAMES or mode not in MODES:
        raise ShelmError(
            f"unknown env '{env_id}'; Procgen ids are procgen/GAME-MODE with GAME one of {', '.join(GAMES)} and MODE "
            f"one of {', '.join(MODES)} (`shelm envs`)"
        )
    if mode == "memory" and game not in MEMORY_GAMES:
        raise ShelmError(
            f"env '{env_id}': Procgen's {game} has no memory mode; memory mode exists for {', '.join(MEMORY_GAMES)}"
        )
    return game, mode


def installed() -> bool:
    return importlib.util.find_spec("procgen") is not None


def require(env_id: str) -> None:
    parse(env_id)
    if not installed():
        raise ShelmError(f"env '{env_id}' needs Procgen: pip install -e '.[procgen]'")


def _gym3_env(env_id: str, num: int, seed: int) -> Any:
    from procgen import ProcgenGym3Env

    game, mode = parse(env_id)
    # num_levels=0: an unlimited set of levels, drawn from rand_seed (the papers trained on the full distribution).
    # num_threads=0 steps the games in this thread: Procgen's default 4 threads only contend with torch's.
    return ProcgenGym3Env(
        num=num,
        env_name=game,
        distribution_mode=mode,
        rand_seed=seed % SEED_MODULUS,
        num_levels=0,
        start_level=0,
        num_threads=0,
    )


def _success(infos: list[dict[str, Any]], ended: np.ndarray) -> dict[str, Any]:
    """The trainer's `final_info`: which games just ended and whether each completed its level."""
    complete = np.array([bool(info["prev_level_complete"]) for info in infos])
    return {"final_info": {"is_success": complete & ended, "_is_success": ended.copy()}}


class ProcgenVecEnv(gym.vector.VectorEnv):
    """N Procgen games in one native batched env, with gymnasium's same-step autoreset semantics."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, env_id: str, num_envs: int):
        require(env_id)
        self.env_id, self.num_envs = env_id, num_envs
        self.single_observation_space = gym.spaces.Box(0, 255, FRAME, np.uint8)
        self.single_action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._env: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Procgen cannot reset its games: a reset builds a fresh batched env from `seed`."""
        seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else seed
        self.close()
        self._env = _gym3_env(self.env_id, self.num_envs, seed)
        _, obs, _ = self._env.observe()
        return obs["rgb"].copy(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        self._env.act(np.asarray(actions, dtype=np.int32))
        reward, obs, first = self._env.observe()
        ended = np.asarray(first, dtype=bool)
        infos = _success(self._env.get_info(), ended) if ended.any() else {}
        # Procgen does not tell a level's time limit from its end: both count as terminated.
        truncated = np.zeros(self.num_envs, dtype=bool)
        return obs["rgb"].copy(), np.asarray(reward, dtype=np.float32), ended.copy(), truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self._env = None


class ProcgenEnv(gym.Env):
    """One Procgen game as a gymnasium Env (for recording: it renders its own frames)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id: str, render_mode: str | None = None):
        require(env_id)
        self.env_id, self.render_mode = env_id, render_mode
        self.observation_space = gym.spaces.Box(0, 255, FRAME, np.uint8)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self._env: Any = None
        self._frame = np.zeros(FRAME, np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._env = _gym3_env(self.env_id, 1, int(self.np_random.integers(SEED_MODULUS)))
        _, obs, _ = self._env.observe()
        self._frame = obs["rgb"][0].copy()
        return self._frame.copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._env.act(np.array([action], dtype=np.int32))
        reward, obs, first = self._env.observe()
        self._frame = obs["rgb"][0].copy()
        ended = bool(first[0])
        info = {"is_success": bool(self._env.get_info()[0]["prev_level_complete"])} if ended else {}
        # The game has already restarted: the observation after an end is the next level's first frame.
        return self._frame.copy(), float(reward[0]), ended, False, info

    def render(self) -> np.ndarray:
        return self._frame.copy()


SUITE = Suite(
    "procgen",
    handles=handles,
    ids=env_ids,
    make=lambda env_id, tile_size, render_mode: ProcgenEnv(env_id, render_mode),
    make_vec=ProcgenVecEnv,
    installed=installed,
    install_hint="pip install -e '.[procgen]'",
)
