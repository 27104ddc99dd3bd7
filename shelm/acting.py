"""The one environment loop: an actor steps a vector env, and finished episodes are scored in one place.

Training collection, evaluation and `shelm inspect` recording all drive `EnvLoop`:

    obs_t ──memory (once)──> memory_t ──agent──> action_t ──env──> obs_t+1, reward_t, done_t, infos_t+1
      └── Transition(obs_t, memory_t, decision_t, reward_t, done_t, finished episodes) ──> the caller

What differs between them is what the caller does with each `Transition`: the trainer stores it in the rollout,
evaluation counts episodes, inspection records frames and words. An optional `view` sees every observation
before the agent does (evaluation's perturbations).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shelm.agents.policy import Actor, Decision
from shelm.envs.registry import SuccessRule

ObservationView = Callable[[Any, Mapping[str, Any]], tuple[Any, Mapping[str, Any]]]
"""(obs, infos) -> what the agent sees of them."""
TIMINGS = ("time_env", "time_memory", "time_agent")
"""Seconds per part of a step: the env (with episode scoring), the frozen memory, the agent's forward pass. What the
caller does with a step (the trainer's rollout storage) is in none of them."""


@dataclass(frozen=True)
class EpisodeResult:
    env: int
    episode_return: float
    """The raw (unnormalised) sum of rewards."""
    length: int
    success: bool


class EpisodeTracker:
    """Raw returns and lengths of the episodes in flight, and the finished ones over a sliding window, each scored
    by the environment suite's success rule."""

    def __init__(self, n_envs: int, window: int | None, success: SuccessRule):
        self.returns = np.zeros(n_envs)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.recent: deque[tuple[float, int, bool]] = deque(maxlen=window)
        self.total_episodes = 0
        self.success = success

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: Mapping[str, Any]) -> list[EpisodeResult]:
        """Add one step's rewards; returns the episodes that ended with it."""
        self.returns += rewards
        self.lengths += 1
        finished = []
        for env in np.flatnonzero(dones):
            episode_return = float(self.returns[env])
            success = self.success(infos, env, episode_return)
            result = EpisodeResult(int(env), episode_return, int(self.lengths[env]), success)
            self.recent.append((result.episode_return, result.length, result.success))
            finished.append(result)
            self.total_episodes += 1
        self.returns[dones] = 0.0
        self.lengths[dones] = 0
        return finished

    def summary(self) -> dict[str, float | None]:
        return summarize(self.recent)

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "total_episodes": self.total_episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent.clear()
        self.recent.extend(tuple(x) for x in state["recent"])  # type: ignore[misc]
        self.total_episodes = state["total_episodes"]


def summarize(episodes: Iterable[tuple[float, int, bool]]) -> dict[str, float | None]:
    """Mean and spread of the (return, length, success) of episodes: None values when there is none."""
    rows = list(episodes)
    if not rows:
        return {"return_mean": None, "return_std": None, "length_mean": None, "success_rate": None}
    returns, lengths, successes = (np.asarray(column, dtype=np.float64) for column in zip(*rows, strict=True))
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "success_rate": float(successes.mean()),
    }


@dataclass
class Transition:
    """One step of N envs, as the caller of `EnvLoop.step` receives it."""

    obs: torch.Tensor
    """[N, H, W, C] the observations acted on (as the agent saw them)"""
    infos: Mapping[str, Any]
    """the infos that came with `obs`"""
    episode_start: torch.Tensor
    """[N] bool: obs is the first of its episode"""
    memory_out: torch.Tensor
    """[N, M] the memory's output for obs"""
    decision: Decision
    reward: np.ndarray
    """[N] raw rewards"""
    done: np.ndarray
    """[N] bool: the episode ended with this step (terminated or truncated)"""
    next_infos: Mapping[str, Any]
    finished: list[EpisodeResult]


@dataclass
class EnvLoop:
    """Steps a gymnasium vector env with an actor; keeps the episode statistics and per-part timings."""

    envs: Any
    actor: Actor
    episodes: EpisodeTracker
    view: ObservationView | None = None
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMINGS, 0.0))

    def reset(self, seed: int) -> None:
        """Start every env's first episode from `seed` (env i gets seed + i)."""
        obs, infos = self._seen(*self.envs.reset(seed=seed))
        tick = time.perf_counter()
        self.actor.start(obs, infos)
        self.timings["time_memory"] += time.perf_counter() - tick

    def step(self) -> Transition:
        actor = self.actor
        tick = time.perf_counter()
        obs, infos, episode_start, memory_out = actor.obs, actor.infos, actor.episode_start, actor.memory_out
        decision = actor.decide()
        tock = time.perf_counter()
        self.timings["time_agent"] += tock - tick

        next_obs, reward, terminated, truncated, next_infos = self.envs.step(decision.action.cpu().numpy())
        next_obs, next_infos = self._seen(next_obs, next_infos)
        done = terminated | truncated
        finished = self.episodes.update(reward, done, next_infos)
        tick = time.perf_counter()
        self.timings["time_env"] += tick - tock

        actor.observe(next_obs, next_infos, done)
        self.timings["time_memory"] += time.perf_counter() - tick
        return Transition(obs, infos, episode_start, memory_out, decision, reward, done, next_infos, finished)

    def take_timings(self) -> dict[str, float]:
        """Seconds spent in each part since the last call."""
        taken, self.timings = self.timings, dict.fromkeys(TIMINGS, 0.0)
        return taken

    def _seen(self, obs: Any, infos: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
        return (obs, infos) if self.view is None else self.view(obs, infos)
