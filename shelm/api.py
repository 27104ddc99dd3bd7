"""The Python API: train a run in one call, load it back, and act with its agent in your own loop.

    run = shelm.train("MiniGrid-MemoryS7-v0", agent="shelm", steps=20_000, settings={"lm_layers": 2})
    agent = shelm.load(run.run_dir)
    env = agent.make_env()
    obs, info = env.reset(seed=0)
    agent.reset()
    action = agent.act(obs, info)

Nothing here is a second implementation. `train` is `shelm train`: the same run plan (`shelm.trainers.RunPlan`:
config resolution, the env's probe, the checks, the run directory and the trainer); `load` is what `shelm eval`
loads (`shelm.evaluate.load_actors`, from the run's trainer: the PPO `Actor` over the run's `Policy`, or a
DreamerV2 run's `DreamerActor`); `TrainedAgent.act` and `predict` drive
that actor exactly as `shelm eval`'s environment loop does (`Actor.start`, `observe`, `decide`), so the same seeds
give the same actions; `TrainedAgent.evaluate` is `shelm eval`.

An env is a registered id or a factory: any callable returning a gymnasium env, built through the same
`shelm.envs.make_env` as a registered id (`shelm.envs.factory`). A run made from a factory records it by name
(env id `factory:MODULE.QUALNAME`, `"env_factory": true` in config.json); only a Python call can give the factory
back, so `shelm.train(factory, resume=...)` continues such a run and `shelm.load(run_dir, env=factory)` plays it.

The memory of an agent is state of the agent object, per env of the loop it plays: the frozen language model's
window of each env (HELM, HELMv2, SHELM), the recurrent state (lstm), the attended window (trxl). `act` and
`predict` carry it from step to step, and empty it where `episode_start` says an env's observation begins a new
episode. `predict`'s `state` is therefore an opaque handle (`AgentState`) naming the loop and step the memory is at,
as Stable-Baselines3's convention asks for something to pass back; a stale handle is refused rather than acted on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from shelm.agents import get_agent_spec
from shelm.agents.policy import Decision
from shelm.config import TrainConfig, parse_value
from shelm.envs import EnvSettings, make_env, make_vec_env
from shelm.envs.factory import EnvFactory, check_async, factory_given, factory_id, is_factory_id, not_given
from shelm.errors import ShelmError
from shelm.evaluate import EVAL_SEED_OFFSET, load_actors
from shelm.evaluate import evaluate as evaluate_run
from shelm.progress import TrainingProgress
from shelm.runs import checkpoint_step, load_run_config, made_by_factory, read_metrics
from shelm.trainers import plan_run, plan_saved_run, trainer_of

__all__ = ["AgentState", "Run", "TrainedAgent", "load", "train"]

Env = str | EnvFactory
"""A registered env id (`shelm envs`, or `module:EnvId`) or a factory: a callable returning a gymnasium env whose
observations are uint8 HxWxC frames (or a Dict holding one) and whose actions are Discrete."""


# --- training --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A run directory `shelm.train` wrote or continued: its config, its metrics, and its trained agent."""

    run_dir: Path
    config: TrainConfig
    factory: EnvFactory | None = None
    """The factory its env was made by, None for a registered id."""

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one row per PPO iteration (per log window for DreamerV2), as `shelm plot` reads it."""
        return read_metrics(self.run_dir)

    def agent(self, checkpoint: str = "latest") -> TrainedAgent:
        """The trained agent of checkpoint 'latest' or 'best' (`load`)."""
        return load(self.run_dir, checkpoint, env=self.factory)


def train(
    env: Env | None = None,
    agent: str | None = None,
    steps: int | None = None,
    settings: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    force: bool = False,
    resume: str | Path | None = None,
    progress: bool = False,
) -> Run:
    """Train `agent` on `env` for `steps` environment steps into `run_dir`, as `shelm train` does; return the run.

    `settings` are any training settings (`shelm settings`), as Python values, e.g. `{"lm_layers": 2, "n_envs": 8}`
    (`env_kwargs` may be a dict of the env's constructor keywords, `env_actions` a list of the env's action indices);
    the paper preset of the (env, agent) pair applies under them. `run_dir` defaults to runs/ENV__AGENT__sSEED__TIME;
    an existing one is refused unless `force`. `resume=RUN_DIR` continues that run from its latest checkpoint with its
    saved config instead (give `env` only when the run's env was made by a factory, which must then be given again).
    `progress` prints what the command prints. Bad input is refused with a `ShelmError` before anything is written.
    """
    if resume is not None:
        given = [name for name, value in (("agent", agent), ("steps", steps), ("settings", settings)) if value]
        given += [name for name, value in (("seed", seed), ("run_dir", run_dir)) if value is not None]
        if given or force:
            dropped = ", ".join(f"{name}=" for name in given) or "force="
            raise ShelmError(f"resume={resume} continues a run with its saved config; drop {dropped}")
        return _resume(Path(resume), env, progress)
    if env is None or agent is None:
        raise ShelmError("shelm.train needs an env (an id or a factory) and agent=NAME, or resume=RUN_DIR")
    overrides = _overrides(settings)
    for key, value in (("total_steps", steps), ("seed", seed)):
        if value is not None:
            overrides[key] = _setting(key, value)
    factory = None if isinstance(env, str) else env
    if factory is not None and not trainer_of(agent).takes_env_factory:
        raise ShelmError(
            f"agent {agent} trains in a child process that builds its env from an id, so it cannot take a Python "
            "factory; register the env (gymnasium.register) and give its id, or 'module:EnvId'"
        )
    with _given(env) as env_id:
        plan = plan_run(env_id, agent, overrides)
        if factory is not None and plan.config.vectorization == "async":
            check_async(factory)
        path, _ = plan.start(
            None if run_dir is None else Path(run_dir),
            force=force,
            command=_call_text(env, agent, steps, settings, seed, run_dir),
            env_factory=factory is not None,
            progress=TrainingProgress(plan.config.total_steps, 0, quiet=not progress),
        )
    return Run(path, plan.config, factory)


def _resume(path: Path, env: Env | None, progress: bool) -> Run:
    if not path.is_dir():
        raise ShelmError(f"resume={path}: no such run directory")
    config = load_run_config(path)
    factory = _factory_for(path, config, env)
    with _given(config.env_id if factory is None else factory):
        start = checkpoint_step(path, "latest")
        if start < config.total_steps:
            plan_saved_run(path).resume(path, TrainingProgress(config.total_steps, start, quiet=not progress))
    return Run(path, config, factory)


def _factory_for(run_dir: Path, config: TrainConfig, env: Env | None) -> EnvFactory | None:
    """The factory a run's env needs (the one given, checked against the recorded name), or None for an id."""
    if made_by_factory(run_dir) or is_factory_id(config.env_id):
        if env is None or isinstance(env, str):
            raise ShelmError(not_given(config.env_id, str(run_dir)))
        if factory_id(env) != config.env_id:
            raise ShelmError(
                f"env {factory_id(env)}: run '{run_dir}' was made by {config.env_id}; give that factory (a run "
                "records its factory by module and name)"
            )
        return env
    if env is not None and env != config.env_id:
        shown = env if isinstance(env, str) else factory_id(env)
        raise ShelmError(f"env {shown}: run '{run_dir}' plays {config.env_id}; drop env= (its config names the env)")
    return None


@contextmanager
def _given(env: Env) -> Iterator[str]:
    """The env id of `env`, with a factory made available to `shelm.envs` while the block runs."""
    if isinstance(env, str):
        with nullcontext(env) as env_id:
            yield env_id
    else:
        with factory_given(env) as env_id:
            yield env_id


def _setting(key: str, value: Any) -> Any:
    """A setting given as a Python value, checked and typed as `--set key=value` would be."""
    if key in ("env_id", "agent"):
        raise ShelmError(f"settings {key}={value!r}: give the env and the agent as shelm.train's own arguments")
    if isinstance(value, bool | int | float | str | Path):
        return parse_value(key, str(value))
    raise ShelmError(f"settings {key}={value!r}: give a number, a bool or a string (`shelm settings` lists them)")


def _overrides(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    overrides = {}
    for key, value in (settings or {}).items():
        if key == "env_kwargs" and isinstance(value, Mapping):
            value = ",".join(f"{name}={item}" for name, item in value.items())
        if key == "env_actions" and isinstance(value, list | tuple):
            value = ",".join(str(action) for action in value)
        overrides[key] = _setting(key, value)
    return overrides


def _call_text(
    env: Env, agent: str, steps: int | None, settings: Mapping[str, Any] | None, seed: int | None, run_dir: Any
) -> str:
    """The call that started a run, as config.json's `command` records it."""
    shown = repr(env) if isinstance(env, str) else factory_id(env).removeprefix("factory:")
    parts = [shown, f"agent={agent!r}"]
    for name, value in (("steps", steps), ("settings", dict(settings or {}) or None), ("seed", seed)):
        if value is not None:
            parts.append(f"{name}={value!r}")
    if run_dir is not None:
        parts.append(f"run_dir={str(run_dir)!r}")
    return f"shelm.train({', '.join(parts)})"


# --- a trained agent in the user's loop -------------------------------------------------------------------


class _Acting(Protocol):
    """What `shelm.evaluate.load_actors` makes: a PPO `Actor` or a DreamerV2 `DreamerActor`."""

    n_envs: int
    greedy: bool

    def start(self, obs: Any, infos: Mapping[str, Any]) -> None: ...

    def observe(self, obs: Any, infos: Mapping[str, Any], episode_start: Any) -> None: ...

    def decide(self) -> Decision: ...


@dataclass(frozen=True)
class AgentState:
    """What `TrainedAgent.predict` returns and takes back: an opaque handle on the loop in progress.

    The memory itself (each env's frozen-LM window, recurrent state or attended window) lives inside the agent
    object and moves on with every call; the handle names which agent, loop and step it is at, so that passing back
    anything but the state the last call returned (one from an earlier step, another loop, another agent) is
    refused instead of acting on a memory that has moved on.
    """

    agent: int
    loop: int
    step: int
    n_envs: int


class TrainedAgent:
    """A trained run's agent, acting in your loop: `reset` / `act`, or Stable-Baselines3's `predict`.

    Observations are the frames of the run's env as shelm builds it (`make_env`, `make_vec_env`: a registered
    MiniGrid id gives its 56x56 RGB partial view, not gymnasium's Dict): one env's [H, W, C] uint8 frame, or N
    envs' [N, H, W, C]. Pass the env's `info` too (one env's dict, or a vector env's batched infos) where the
    agent reads it: SHELM's symbolic retriever, an instruction. Actions come back as an int for one env and an
    int64 array [N] for N envs (`predict`: arrays, as SB3 returns them).
    """

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        checkpoint: str,
        make_actor: Callable[[int, int, bool], Any],
        global_step: int,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete,
        factory: EnvFactory | None,
    ):
        self.run_dir, self.config, self.checkpoint = run_dir, config, checkpoint
        self.global_step = global_step
        """The environment steps the checkpoint was trained for."""
        self.observation_space, self.action_space = observation_space, action_space
        self.factory = factory
        self.seed = config.seed + EVAL_SEED_OFFSET
        """Seeds the sampled actions of the next loop (default: `shelm eval`'s seed, so its draws are eval's)."""
        self._make_actor = make_actor
        self._actor: _Acting | None = None
        self._started = False
        self._loop = 0
        self._step = 0
        self._predicting = False
        self._warned = False

    @property
    def _env(self) -> Env:
        return self.config.env_id if self.factory is None else self.factory

    def __repr__(self) -> str:
        label = get_agent_spec(self.config.agent).label(self.config)
        return f"TrainedAgent({label} on {self.config.env_id}, step {self.global_step}, {self.run_dir})"

    # --- envs, built as the run's --------------------------------------------------------------------------

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """One env of the run, built as training and `shelm eval` build it (wrappers, frames, preprocessing)."""
        with _given(self._env):
            return make_env(EnvSettings.from_config(self.config), render_mode)

    def make_vec_env(self, n_envs: int, render_mode: str | None = None) -> gym.vector.VectorEnv:
        """`n_envs` envs of the run in one synchronous vector env, as `shelm eval` builds them. Finished episodes
        are reset within the same step (gymnasium's `AutoresetMode.SAME_STEP`), so the observations after a step
        whose `terminated | truncated` is True begin new episodes: that is the `episode_start` to pass next."""
        if n_envs < 1:
            raise ShelmError(f"n_envs={n_envs}: play at least 1 env")
        with _given(self._env):
            return make_vec_env(EnvSettings.from_config(self.config), n_envs, render_mode=render_mode)

    # --- acting ------------------------------------------------------------------------------------------

    def reset(self, n_envs: int = 1, seed: int | None = None) -> None:
        """Begin new episodes in `n_envs` envs: every env's memory is emptied, and the next `act`'s observations
        are the first of their episodes. `seed` seeds the sampled actions (default `self.seed`)."""
        if n_envs < 1:
            raise ShelmError(f"n_envs={n_envs}: play at least 1 env")
        if seed is not None:
            self.seed = seed
        self._new_loop(n_envs)
        self._predicting = False

    def act(
        self,
        obs: Any,
        info: Mapping[str, Any] | None = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> int | np.ndarray:
        """The actions for `obs`, the memory carried over from the previous call of this loop.

        `episode_start` ([N] bool, or one bool) marks the envs whose `obs` begins a new episode: their memory is
        emptied before it reads `obs`. None means none does, except on the first call after `load` or `reset`,
        whose observations all begin episodes. `deterministic` takes the arg-max action (as `shelm eval`'s
        'greedy' mode); False samples one.
        """
        frames, single = self._frames(obs)
        if self._actor is None:
            self._new_loop(len(frames))
        self._feed(frames, self._infos(info, single), episode_start)
        actions = self._decide(deterministic)
        return int(actions[0]) if single else actions

    def predict(
        self,
        obs: Any,
        state: AgentState | None = None,
        episode_start: Any = None,
        deterministic: bool = False,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, AgentState]:
        """Stable-Baselines3's `predict`: `(actions, state)` for `obs`.

        `state` is what the previous call returned; None begins new episodes in every env (their memory emptied), as
        on the first call. Pass it back every step, or the agent forgets: a `state=None` call while a loop is in
        progress warns once. `episode_start` ([N] bool) marks the envs whose `obs` begins a new episode (after a
        step that ended one, with the vector env resetting it at once: `episode_start = terminated | truncated`);
        their memory is emptied. `info` is the env's info, where the agent reads it (not in SB3's signature).
        """
        frames, single = self._frames(obs)
        n_envs = len(frames)
        if state is None:
            starts = None if episode_start is None else self._starts(episode_start, n_envs)
            if self._predicting and (starts is None or not starts.all()) and not self._warned:
                self._warned = True
                warnings.warn(
                    "predict(state=None) empties every env's memory and begins new episodes; to carry the memory, "
                    "pass back the state the previous call returned (episode_start marks the envs that begin anew)",
                    UserWarning,
                    stacklevel=2,
                )
            self._new_loop(n_envs)
        else:
            self._check(state, n_envs)
        self._feed(frames, self._infos(info, single), episode_start)
        actions = self._decide(deterministic)
        self._predicting = True
        handle = AgentState(id(self), self._loop, self._step, n_envs)
        return (actions[0] if single else actions), handle

    def evaluate(self, episodes: int = 20, seed: int | None = None) -> dict[str, Any]:
        """`shelm eval` of this run and checkpoint: greedy and sampled episodes on fresh seeds (default: the run's
        seed + 1e9), the same report `shelm eval --json` prints. It plays with its own copy of the agent, so a loop
        in progress here keeps its memory."""
        with _given(self._env):
            return evaluate_run(self.run_dir, episodes=episodes, checkpoint=self.checkpoint, seed=seed)

    # --- the loop's bookkeeping -----------------------------------------------------------------------------

    def _new_loop(self, n_envs: int) -> None:
        with _given(self._env):
            self._actor = self._make_actor(n_envs, self.seed, True)
        self._started, self._step = False, 0
        self._loop += 1

    def _frames(self, obs: Any) -> tuple[np.ndarray | torch.Tensor, bool]:
        """`obs` as a batch of frames, and whether it was one env's frame."""
        expected = tuple(self.observation_space.shape)
        if isinstance(obs, Mapping):
            raise ShelmError(
                f"obs is a dict ({', '.join(map(str, obs))}); this agent sees the {expected} uint8 frames of the env "
                "as shelm builds it: make it with agent.make_env() or agent.make_vec_env(n)"
            )
        frames = obs if isinstance(obs, torch.Tensor) else np.asarray(obs)
        shape = tuple(frames.shape)
        if shape != expected and shape[1:] != expected:
            raise ShelmError(
                f"obs of shape {shape}: this agent sees frames of shape {expected} (one env) or (N, *{expected}) "
                "(N envs), as agent.make_env() and agent.make_vec_env(n) give them"
            )
        if frames.dtype != (torch.uint8 if isinstance(frames, torch.Tensor) else np.uint8):
            raise ShelmError(f"obs of dtype {frames.dtype}: this agent sees uint8 frames (0..255), as its env gives")
        single = shape == expected
        return (frames[None] if single else frames), single

    @staticmethod
    def _infos(info: Mapping[str, Any] | None, single: bool) -> Mapping[str, Any]:
        """The infos as a vector env gives them: one env's info becomes a batch of one."""
        if info is None:
            return {}
        if not isinstance(info, Mapping):
            raise ShelmError(f"info of type {type(info).__name__}: give the env's info dict (or None)")
        return batch_of_one(info) if single else info

    @staticmethod
    def _starts(episode_start: Any, n_envs: int) -> np.ndarray:
        starts = np.asarray(episode_start, dtype=bool).reshape(-1)
        if starts.shape != (n_envs,):
            raise ShelmError(
                f"episode_start of shape {np.shape(episode_start)}: give one bool per env ({n_envs}), True where the "
                "observation begins a new episode"
            )
        return starts

    def _check(self, state: AgentState, n_envs: int) -> None:
        if not isinstance(state, AgentState):
            raise ShelmError(
                f"state of type {type(state).__name__}: pass the state the previous predict returned, or None to begin "
                "new episodes"
            )
        if state.agent != id(self):
            raise ShelmError("state belongs to another agent's loop; pass this agent's own last state, or None")
        if (state.loop, state.step) != (self._loop, self._step):
            raise ShelmError(
                f"state of step {state.step} of an earlier loop or step (this agent's memory is at step {self._step}); "
                "pass the state the last predict returned, or None to begin new episodes"
            )
        if state.n_envs != n_envs:
            raise ShelmError(f"{n_envs} observations for a state of {state.n_envs} envs; give one per env")

    def _feed(self, frames: Any, infos: Mapping[str, Any], episode_start: Any) -> None:
        actor = self._actor
        assert actor is not None
        if len(frames) != actor.n_envs:
            raise ShelmError(
                f"{len(frames)} observations for a loop of {actor.n_envs} envs; call agent.reset({len(frames)}) to "
                "begin new episodes in as many envs"
            )
        if not self._started:
            actor.start(frames, infos)  # every env's memory emptied; these observations begin episodes
            self._started = True
            return
        n_envs = actor.n_envs
        starts = np.zeros(n_envs, dtype=bool) if episode_start is None else self._starts(episode_start, n_envs)
        actor.observe(frames, infos, torch.as_tensor(starts))

    def _decide(self, deterministic: bool) -> np.ndarray:
        actor = self._actor
        assert actor is not None
        actor.greedy = deterministic
        decision = actor.decide()
        self._step += 1
        return decision.action.cpu().numpy().astype(np.int64)


def batch_of_one(info: Mapping[str, Any]) -> dict[str, Any]:
    """One env's info as a vector env of one env batches it (gymnasium's layout: each value in an array of one,
    with its `_KEY` mask; a dict recursively), which is what the memories read."""
    batched: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, Mapping):
            batched[key] = batch_of_one(value)
        elif isinstance(value, np.ndarray):
            batched[key] = value[None]
        elif type(value) in (int, float, bool) or isinstance(value, np.number):
            batched[key] = np.array([value], dtype=type(value))
        else:
            batched[key] = np.full(1, None, dtype=object)
            batched[key][0] = value
        batched[f"_{key}"] = np.ones(1, dtype=np.bool_)
    return batched


def load(run_dir: str | Path, checkpoint: str = "latest", *, env: Env | None = None) -> TrainedAgent:
    """The trained agent of a run directory (`shelm train`'s or `shelm.train`'s, PPO or DreamerV2), ready to act.

    `checkpoint` is 'latest' or 'best'. `env` is needed only when the run's env was made by a Python factory: give
    that factory again (the run records it by name; another is refused).
    """
    path = Path(run_dir)
    if checkpoint not in ("latest", "best"):
        raise ShelmError(f"checkpoint={checkpoint!r}: choose 'latest' or 'best'")
    config = load_run_config(path)
    factory = _factory_for(path, config, env)
    with _given(config.env_id if factory is None else factory):
        config, make_actor, state = load_actors(path, checkpoint)
        env = make_env(EnvSettings.from_config(config))
        spaces = env.observation_space, env.action_space
        env.close()
    return TrainedAgent(path, config, checkpoint, make_actor, int(state["global_step"]), *spaces, factory)
