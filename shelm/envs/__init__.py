"""Environments: one module per suite, each described by a `Suite` record in the registry (`shelm.envs.registry`).

Every environment shelm trains on yields uint8 HxWxC images and takes discrete actions. Built-in suites:
- `minigrid`: every MiniGrid and BabyAI id, as the agent's RGB partial view (56x56x3 at tile size 8);
- `random_maze`: `shelm/RandomMaze-v0`, the HELM paper's random maze (9x9x3 egocentric crop);
- `procgen` (extra): `procgen/GAME-MODE`, 64x64x3, natively batched; the papers used MODE=memory;
- `miniworld` (extra): `MiniWorld-*`, 60x80x3 first-person 3D frames, rendered headless;
- `memory_gym` (extra): Mortar Mayhem, Mystery Path, Searing Spotlights, 84x84x3;
- `avalon`, `dmlab`: the papers' suites that no package registry can provide; asking for them says why;
- `factory`: `factory:MODULE.QUALNAME`, an env a user's Python callable makes (`shelm.train(make_env, ...)`);
- any other gymnasium id, also `module:EnvId` for an env of another package (the module is imported first, which
  registers its ids), whose observation is a uint8 HxWxC image, or a Dict with one (`obs_key`), and whose actions
  are Discrete.
`register_suite` adds another suite, from inside or outside the package. Every function below asks the registry:
which suite builds an id, the papers' presets for it, and when its episodes count as successes.
Vector envs reset finished episodes in the same step (the final observation goes to `info["final_obs"]`),
so the trainer never sees a dummy transition between episodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from shelm.config import TrainConfig, parse_env_actions, parse_obs_resize
from shelm.envs import factory, memory_gym, minigrid, miniworld, procgen, random_maze, unavailable
from shelm.envs.registry import (
    SuccessRule,
    Suite,
    flag_or_positive_return,
    get_suite,
    gym_make,
    register_suite,
    registered_suites,
    unregister_suite,
)
from shelm.envs.wrappers import (
    ActionSubset,
    FixedLayouts,
    FrameFromDict,
    ObsPreprocessing,
    TextsIntoInfo,
    env_action_indices,
    text_entries,
)
from shelm.errors import ShelmError
from shelm.probe import RANDOM_PLAY_LANES, RANDOM_PLAY_STEPS, EnvProbe

__all__ = [
    "DEFAULT_PREPROCESSING",
    "RANDOM_MAZE_ID",
    "EnvSettings",
    "ObsPreprocessing",
    "SuccessRule",
    "Suite",
    "env_action_indices",
    "episode_step_limit",
    "flag_or_positive_return",
    "get_suite",
    "gym_make",
    "info_keys",
    "list_envs",
    "make_env",
    "make_vec_env",
    "pair_preset",
    "paper_presets",
    "probe_env",
    "register_suite",
    "registered_suites",
    "same_frames",
    "success_rule",
    "suite_of",
    "suites",
    "task_preset",
    "unregister_suite",
]

RANDOM_MAZE_ID = random_maze.ENV_ID
DEFAULT_PREPROCESSING = ObsPreprocessing()
"""A new run's observation preprocessing (`obs_resize=auto`, no grey, no stack)."""

register_suite(minigrid.SUITE)
register_suite(random_maze.SUITE)
register_suite(procgen.SUITE)
register_suite(miniworld.SUITE)
register_suite(memory_gym.SUITE)
register_suite(unavailable.AVALON)
register_suite(unavailable.DMLAB)
register_suite(factory.SUITE)


@dataclass(frozen=True)
class EnvSettings:
    """How `make_env` and `make_vec_env` build an env: its id, and the settings of a run that decide what its agent
    sees. `EnvSettings.from_config` reads them from a run's config, so that training, evaluation, inspection and the
    API build the same env; `EnvSettings(env_id)` gives a new run's defaults. How an env renders (`render_mode`) is
    no part of them: each call that records asks for it."""

    env_id: str
    """The env: a registered id, `module:EnvId` or `factory:MODULE.QUALNAME` (the suite that claims it builds it)."""
    tile_size: int = 8
    """Pixels per MiniGrid cell of the RGB partial view (the `minigrid_tile_size` setting; 8 -> 56x56x3); the other
    suites ignore it."""
    obs_key: str = "auto"
    """For an env that observes a Dict: the key of the image the agent sees; 'auto' takes the only uint8 HxWxC entry
    (`image_entry`). Other than 'auto' on an env without a Dict observation, it is refused."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env's constructor, passed through `gymnasium.make` (the config's `gym_kwargs`); a
    suite that builds its envs without constructor keywords refuses any."""
    actions: tuple[int, ...] = ()
    """The env's actions the agent chooses from, by the env's index, in the agent's order (the `env_actions`
    setting; `ActionSubset`); () gives it every action."""
    layouts: int = 0
    """Episodes drawn from this many fixed layouts (the `env_layouts` setting; `FixedLayouts`); 0: every episode
    new."""
    preprocess: ObsPreprocessing = DEFAULT_PREPROCESSING
    """How the frames are prepared (the `obs_resize`, `obs_grayscale` and `obs_frame_stack` settings); by default a
    new run's: large frames resized to 64x64, every built-in suite's kept as they are."""
    max_episode_steps: int | None = None
    """Episodes that last this many steps end there as truncated (gymnasium's TimeLimit), where playing should not
    wait for the env's own end (evaluation's and inspection's step cap, no setting of a run); None: the env's own
    limit."""

    @classmethod
    def from_config(cls, config: TrainConfig, max_episode_steps: int | None = None) -> EnvSettings:
        """The envs of the run of `config`, as its training, evaluation and inspection build them, their episodes
        capped at `max_episode_steps` where given."""
        return cls(
            env_id=config.env_id,
            tile_size=config.minigrid_tile_size,
            obs_key=config.obs_key,
            env_kwargs=config.gym_kwargs,
            actions=parse_env_actions(config.env_actions),
            layouts=config.env_layouts,
            preprocess=ObsPreprocessing(
                parse_obs_resize(config.obs_resize), config.obs_grayscale, config.obs_frame_stack
            ),
            max_episode_steps=max_episode_steps,
        )


def suite_of(env_id: str) -> str:
    """The name of the suite that builds `env_id` ('gymnasium' when no registered suite claims it)."""
    return get_suite(env_id).name


def suites() -> list[tuple[str, bool, str]]:
    """(suite, installed, how to get it) for every registered suite."""
    return [(suite.name, suite.installed(), suite.install_hint) for suite in registered_suites()]


def list_envs() -> list[tuple[str, str]]:
    """(id, suite) for every id shelm knows to work with what is installed."""
    return [(env_id, suite.name) for suite in registered_suites() if suite.installed() for env_id in suite.ids()]


def paper_presets() -> dict[tuple[str, str], dict[str, Any]]:
    """Every (env id, agent) row of the papers' presets, over every registered suite."""
    return {pair: dict(row) for suite in registered_suites() for pair, row in suite.presets.items()}


def pair_preset(env_id: str, agent: str) -> dict[str, Any] | None:
    """The authors' settings for this (environment, agent) pair, None when their configs have none."""
    row = get_suite(env_id).presets.get((env_id, agent))
    return None if row is None else dict(row)


def task_preset(env_id: str) -> dict[str, Any]:
    """The papers' settings of a task that hold for every agent (empty for most tasks)."""
    return dict(get_suite(env_id).task_presets.get(env_id, {}))


def info_keys(env_id: str) -> tuple[str, ...]:
    """The keys every env of `env_id`'s suite carries in its info at every reset and step (`Suite.info_keys`), known
    before any env is built: e.g. MiniGrid's symbolic view, which decides where SHELM's retriever can be symbolic."""
    return get_suite(env_id).info_keys


def success_rule(env_id: str) -> SuccessRule:
    """When an episode of `env_id` counts as a success: its suite's rule (`flag_or_positive_return` by default)."""
    return get_suite(env_id).success


def _check_spaces(env_id: str, env: gym.Env) -> None:
    obs, act = env.observation_space, env.action_space
    if not _is_image(obs):
        env.close()
        raise ShelmError(
            f"env '{env_id}' observes {obs}, not a uint8 HxWxC image; wrap it to return RGB frames "
            "(e.g. gymnasium's AddRenderObservation) and register the wrapped id"
        )
    if not isinstance(act, gym.spaces.Discrete):
        env.close()
        raise ShelmError(f"env '{env_id}' has actions {act}; shelm's agents need a Discrete action space")


def image_entry(env_id: str, space: gym.spaces.Dict, obs_key: str) -> str:
    """The key of the image in a Dict observation: `obs_key`, or with 'auto' the only uint8 HxWxC entry."""
    entries = ", ".join(f"{key}: {sub}" for key, sub in space.spaces.items())
    if obs_key != "auto":
        if obs_key not in space.spaces:
            raise ShelmError(f"--set obs_key={obs_key}: env '{env_id}' observes a Dict without it ({entries})")
        return obs_key
    images = [key for key, sub in space.spaces.items() if _is_image(sub)]
    if len(images) != 1:
        found = "no uint8 HxWxC image" if not images else f"{len(images)} images ({', '.join(images)})"
        raise ShelmError(
            f"env '{env_id}' observes a Dict with {found} ({entries}); pick the image with --set obs_key=KEY"
        )
    return images[0]


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def _takes_env_kwargs(suite: Suite, env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `suite.make` that carry `env_kwargs`: none when there are none, and a one-line refusal
    when the suite builds its envs without constructor keywords."""
    if not env_kwargs:
        return {}
    if suite.make_vec is not None or "env_kwargs" not in inspect.signature(suite.make).parameters:
        raise ShelmError(
            f"--env-kwargs: env '{env_id}' (suite {suite.name}) is not built with constructor keywords; drop "
            "--env-kwargs (or --set env_kwargs=)"
        )
    return {"env_kwargs": dict(env_kwargs)}


def make_env(settings: EnvSettings, render_mode: str | None = None) -> gym.Env:
    """One environment of any suite, built as `settings` say, with its spaces checked. A Dict observation is reduced
    to its image entry (`EnvSettings.obs_key`), its text entries copied into the info (`TextsIntoInfo`, where an
    instruction is read from). The frames are then prepared as `EnvSettings.preprocess` says, and episodes capped at
    `EnvSettings.max_episode_steps` where given. `render_mode` (e.g. 'rgb_array', to record) goes to the env."""
    env = _made_env(settings, render_mode)
    sized_by_setting = get_suite(settings.env_id).frames_sized_by is not None
    try:
        if settings.preprocess.changes(env.observation_space, sized_by_setting):
            env = settings.preprocess.apply(env, sized_by_setting)
    except (ValueError, TypeError) as exc:  # gymnasium's wrappers refuse frames they cannot prepare
        env.close()
        raise ShelmError(
            f"env '{settings.env_id}': its frames {env.observation_space.shape} cannot be preprocessed ({exc}); set "
            "obs_resize=none, obs_grayscale=false and obs_frame_stack=1"
        ) from None
    if settings.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, settings.max_episode_steps)
    return env


def same_frames(first: TrainConfig, second: TrainConfig) -> bool:
    """Whether two configs of one env give its agent the same frames, their observation preprocessing told apart
    only where it changes them: e.g. `obs_resize` 'auto' and 'none' on every built-in suite, so that a sweep
    continues the trials it saved before the setting existed ('none')."""
    settings = EnvSettings.from_config(first)
    preprocessing = settings.preprocess, EnvSettings.from_config(second).preprocess
    if preprocessing[0] == preprocessing[1]:
        return True
    env = _made_env(settings, None)
    height, width = env.observation_space.shape[:2]
    env.close()
    sized_by_setting = get_suite(first.env_id).frames_sized_by is not None

    def prepared(preprocess: ObsPreprocessing) -> tuple[Any, ...]:
        return preprocess.size_for(height, width, sized_by_setting), preprocess.grayscale, preprocess.frame_stack

    return prepared(preprocessing[0]) == prepared(preprocessing[1])


def episode_step_limit(env: gym.Env) -> int | None:
    """The most steps an episode of `env` lasts by the env's own rule, where it tells: a gymnasium time limit
    (`max_episode_steps` of its spec or a TimeLimit wrapper), or the `max_steps` MiniGrid's envs keep; None when
    it says nothing (ALE's envs end an episode after 108,000 frames, which they do not expose this way)."""
    limits = []
    current: gym.Env | None = env
    while current is not None:
        if isinstance(current, gym.wrappers.TimeLimit):
            limits.append(current._max_episode_steps)
        spec = getattr(current, "spec", None)
        if spec is not None and spec.max_episode_steps is not None:
            limits.append(spec.max_episode_steps)
        current = getattr(current, "env", None)
    own = getattr(env.unwrapped, "max_steps", None)
    if isinstance(own, int):
        limits.append(own)
    return min(limits) if limits else None


def _made_env(settings: EnvSettings, render_mode: str | None) -> gym.Env:
    """`make_env` before preprocessing and its step cap: the env as its suite makes it, reduced to its frames and
    checked."""
    env_id, obs_key = settings.env_id, settings.obs_key
    suite = get_suite(env_id)
    env = suite.make(env_id, settings.tile_size, render_mode, **_takes_env_kwargs(suite, env_id, settings.env_kwargs))
    if isinstance(env.observation_space, gym.spaces.Dict):
        try:
            key = image_entry(env_id, env.observation_space, obs_key)
        except ShelmError:
            env.close()
            raise
        texts = text_entries(env.observation_space)
        if texts:
            env = TextsIntoInfo(env, texts)
        env = FrameFromDict(env, key)
    elif obs_key != "auto":
        env.close()
        raise ShelmError(f"--set obs_key={obs_key}: env '{env_id}' does not observe a Dict; leave obs_key=auto")
    _check_spaces(env_id, env)
    if settings.actions:
        n_actions = int(env.action_space.n)
        beyond = [action for action in settings.actions if action >= n_actions]
        if beyond:
            env.close()
            listed = ",".join(map(str, settings.actions))
            raise ShelmError(
                f"--set env_actions={listed}: env '{env_id}' has actions 0..{n_actions - 1}, not {beyond[0]}; give "
                f"indices below {n_actions}"
            )
        env = ActionSubset(env, settings.actions)
    if settings.layouts:
        env = FixedLayouts(env, settings.layouts)
    return env


def make_vec_env(
    settings: EnvSettings, n_envs: int, vectorization: str = "sync", render_mode: str | None = None
) -> gym.vector.VectorEnv:
    """`n_envs` copies of the env `settings` describe (see `make_env`), stepped in this process ('sync') or in
    subprocesses ('async'); seed them with `reset(seed=s)` (copy i gets s + i; Procgen draws its games' seeds from
    s). A suite that batches natively does so unless a copy must be wrapped: to record (a `render_mode`), to prepare
    its frames other than it makes them, to cap its episodes, to give its agent some of its actions, or to fix its
    layouts."""
    suite = get_suite(settings.env_id)
    _takes_env_kwargs(suite, settings.env_id, settings.env_kwargs)
    natively = render_mode is None and settings.max_episode_steps is None
    natively = natively and not settings.actions and not settings.layouts
    if suite.make_vec is not None and natively:
        native = suite.make_vec(settings.env_id, n_envs)  # its own batching; recording needs per-copy renders
        if not settings.preprocess.changes(native.single_observation_space, suite.frames_sized_by is not None):
            return native
        native.close()
    make_env(settings).close()  # Fail fast, here, in one line.
    thunks: list[Callable[[], gym.Env]] = [lambda: make_env(settings, render_mode) for _ in range(n_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(thunks, autoreset_mode=mode, context=suite.async_context)
    return gym.vector.SyncVectorEnv(thunks, autoreset_mode=mode)


def probe_env(config: TrainConfig) -> EnvProbe:
    """The run's env built once (`EnvSettings.from_config`), reset with the run's seed and played at random, as an
    `EnvProbe`.

    The random play shows what a synchronous vector env of `RANDOM_PLAY_LANES` copies would show, reset with the
    run's seed (copy i with seed + i) and stepped `RANDOM_PLAY_STEPS - 1` times with actions drawn, one batch per
    step, from numpy's generator seeded with the run's seed: the one env plays each copy's lane in turn, and is reset
    (unseeded) where an episode ends, as such a vector env resets its copies. So the frames are those a vector env
    would have given, from a single env."""
    env = make_env(EnvSettings.from_config(config))
    try:
        obs, info = env.reset(seed=config.seed)
        rng = np.random.default_rng(config.seed)
        actions = [rng.integers(env.action_space.n, size=RANDOM_PLAY_LANES) for _ in range(RANDOM_PLAY_STEPS - 1)]
        frames = []
        for lane in range(RANDOM_PLAY_LANES):
            if lane:
                obs, _ = env.reset(seed=config.seed + lane)
            frames.append(np.array(obs, copy=True))
            for batch in actions:
                obs, _, terminated, truncated, _ = env.step(batch[lane])
                if terminated or truncated:
                    obs, _ = env.reset()
                frames.append(np.array(obs, copy=True))
    finally:
        env.close()
    return EnvProbe(
        config.env_id, env.observation_space, env.action_space, dict(info), np.unique(np.stack(frames), axis=0)
    )
