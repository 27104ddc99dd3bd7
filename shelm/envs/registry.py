"""The suite registry: one `Suite` record per family of environments, which every function of `shelm.envs` asks.

A suite says which ids it builds, how to build one (and, if it batches natively, N of them), whether its package
is installed and how to install it, the papers' settings for its tasks, and when one of its episodes counts as a
success. Each suite module defines its record beside its code; `shelm.envs` registers the built-in ones, and a
user registers another with one `register_suite(...)` call (a name once; `replace=True` replaces it). The first
registered suite whose `handles` accepts an id builds it; an id that no suite claims is built as a plain gymnasium
env (`GYMNASIUM`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from shelm.errors import ShelmError
from shelm.registry import Registry

SuccessRule = Callable[[dict[str, Any], int, float], bool]
"""(infos of the vector step that ended the episode, index of the env in the batch, the episode's raw return)
-> whether the episode succeeded."""


def flag_or_positive_return(infos: dict[str, Any], env_index: int, episode_return: float) -> bool:
    """The default success rule: the env's `is_success` flag where it reports one at the episode's end (RandomMaze,
    Procgen, Memory Gym), else a positive return (MiniGrid and MiniWorld reward only success)."""
    final = infos.get("final_info", {})
    flag = final.get("is_success")
    if flag is not None and bool(final["_is_success"][env_index]):
        return bool(flag[env_index])
    return episode_return > 0


def gym_make(env_id: str, render_mode: str | None = None, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """`gymnasium.make`, refusing in one line what it would raise on: an id gymnasium does not know (with the
    closest known id), and for `module:EnvId` (gymnasium's way to name an env of another package: the module is
    imported first, which registers its ids) a module that does not import or an id it does not register; and
    `env_kwargs` (the `env_kwargs` setting) that the env's constructor refuses. `render_mode` is passed only when
    asked (not every env's constructor accepts it)."""
    module, colon, name = env_id.rpartition(":")
    if colon:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import can fail in any way; the user needs to know which module and why
            raise ShelmError(
                f"--env {env_id}: module '{module}' does not import ({type(exc).__name__}: {exc}); install the "
                "package that provides it"
            ) from None
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry), n=1)
        hint = f"did you mean '{f'{module}:' if colon else ''}{close[0]}'? " if close else ""
        if colon:
            raise ShelmError(f"--env {env_id}: module '{module}' registers no env '{name}'; {hint}check the id")
        raise ShelmError(f"unknown env '{env_id}'; {hint}`shelm envs` lists the available ids")
    if not env_kwargs:
        return gym.make(name, **({"render_mode": render_mode} if render_mode else {}))
    try:
        return gym.make(name, **({"render_mode": render_mode} if render_mode else {}), **env_kwargs)
    except (TypeError, ValueError, AssertionError) as exc:  # what constructors raise on a keyword or value they refuse
        given = ",".join(f"{key}={value}" for key, value in env_kwargs.items())
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ShelmError(
            f"--env-kwargs {given}: env '{env_id}' refuses them ({why}); give keywords and values its constructor takes"
        ) from None


def make_registered(
    env_id: str, tile_size: int, render_mode: str | None, env_kwargs: Mapping[str, Any] | None = None
) -> gym.Env:
    """The default `Suite.make`: the gymnasium env registered under `env_id` (`tile_size` is MiniGrid's)."""
    return gym_make(env_id, render_mode, env_kwargs)


def _installed() -> bool:
    return True


def paper_row(
    lr: float,
    ent_coef: float,
    ent_decay: str,
    n_steps: int,
    total_steps: int,
    mem_len: int | None = None,
    topk: int | None = None,
) -> dict[str, Any]:
    """One row of the papers' per-(task, agent) settings, as training-setting keys. Columns of the authors' configs
    the trainer has no use for are left out on purpose: the reference LSTM's "batch size in sequences" does not
    apply because shelm's recurrent minibatches are `n_minibatches` groups of whole episode segments."""
    row = {"lr": lr, "ent_coef": ent_coef, "ent_decay": ent_decay, "n_steps": n_steps, "total_steps": total_steps}
    row |= {} if mem_len is None else {"mem_len": mem_len}
    return row if topk is None else {**row, "topk": topk}


@dataclass(frozen=True)
class Suite:
    """One family of environments, and everything shelm needs to know about it."""

    name: str
    """What `shelm envs` calls it, and the key it is registered (and replaced, or unregistered) under."""
    handles: Callable[[str], bool]
    """Whether an env id belongs to this suite."""
    ids: Callable[[], list[str]]
    """The ids `shelm envs` lists (asked only when the suite is installed)."""
    make: Callable[[str, int, str | None], gym.Env] = make_registered
    """(env_id, tile_size, render_mode) -> one env yielding uint8 HxWxC frames and taking Discrete actions.
    It imports what the suite needs and raises ShelmError naming the install command when that is missing. The
    default builds the gymnasium env registered under the id. A suite whose envs take constructor keywords (the
    `env_kwargs` setting) accepts them as a keyword argument `env_kwargs` (a dict), given only when there are some,
    and passes them to `gym_make`; a suite without that parameter is refused them in one line."""
    make_vec: Callable[[str, int], gym.vector.VectorEnv] | None = None
    """(env_id, n_envs) -> the suite's own batched env for training, for suites that batch natively; None steps
    copies of `make` in a gymnasium vector env. Recording (a render_mode), preprocessing that changes its frames and a
    step cap use copies of `make` (`shelm.envs.make_vec_env`)."""
    async_context: str | None = None
    """The multiprocessing start method of asynchronous vectorization (None: the platform's default)."""
    installed: Callable[[], bool] = _installed
    """Whether the suite's package is importable."""
    install_hint: str = "built in"
    """How to get it (the pip command), or why it cannot be had."""
    presets: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """The papers' settings per (env id, agent): what `preset=paper` applies to that pair."""
    task_presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The papers' settings per env id that hold for every agent, applied under the pair's row."""
    success: SuccessRule = flag_or_positive_return
    """When one of its episodes counts as a success (success_rate, evaluation, traces)."""
    frames_sized_by: str | None = None
    """The setting that sizes this suite's frames, if one does (MiniGrid's `minigrid_tile_size`): `obs_resize=auto`
    leaves such frames at the size the user chose."""
    info_keys: tuple[str, ...] = ()
    """The `shelm.info_keys` every one of its envs carries in its info at every reset and step (MiniGrid's symbolic
    view and mission), which settings can be resolved by before an env is built."""


SUITES: Registry[Suite] = Registry("suite", listed_by="`shelm envs --suites`")
"""The registered suites by name, in registration order (the order `shelm envs --suites` lists them in and
`get_suite` asks them in)."""

GYMNASIUM = Suite("gymnasium", handles=lambda env_id: True, ids=list)
"""Any other registered gymnasium id whose observation is a uint8 image Box and whose actions are Discrete."""


def register_suite(suite: Suite, *, replace: bool = False) -> None:
    """Makes `suite` known to every function of `shelm.envs`; a suite of the same name is refused unless `replace`,
    which puts `suite` in the old one's place. Every preset's env id must belong to the suite, or its rows could
    never apply."""
    stray = sorted({env_id for env_id, _ in suite.presets} | set(suite.task_presets))
    stray = [env_id for env_id in stray if not suite.handles(env_id)]
    if stray:
        raise ValueError(f"suite '{suite.name}' has presets for ids it does not handle: {', '.join(stray)}")
    SUITES.register(suite.name, suite, replace=replace)


def unregister_suite(name: str) -> Suite:
    """Forgets the suite registered as `name` and returns it."""
    return SUITES.unregister(name)


def registered_suites() -> list[Suite]:
    """Every registered suite, in registration order."""
    return SUITES.values()


def get_suite(env_id: str) -> Suite:
    """The suite that builds `env_id`: the first registered one that handles it, else `GYMNASIUM`."""
    return next((suite for suite in SUITES.values() if suite.handles(env_id)), GYMNASIUM)
