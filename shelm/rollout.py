"""Rollout storage, returns, minibatches and the running statistics PPO keeps between iterations.

One `Rollout` holds T steps of N environments. Its `memory` slot keeps the frozen memory module's output
for every step, so the update re-evaluates only the trainable parts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Rollout:
    """Tensors indexed [t, n]; `episode_start[t, n]` is True when obs[t, n] begins an episode."""

    obs: torch.Tensor  # uint8 [T, N, H, W, C]
    memory: torch.Tensor  # float [T, N, M]: frozen memory output, M = 0 without one
    episode_start: torch.Tensor  # bool [T, N]
    actions: torch.Tensor  # long [T, N]
    logprobs: torch.Tensor  # [T, N]
    values: torch.Tensor  # [T, N]
    rewards: torch.Tensor  # [T, N], after normalisation
    dones: torch.Tensor  # bool [T, N]: the episode ended with this step (terminated or truncated)
    initial_state: torch.Tensor  # [N, ...]: the agent's recurrent state before step 0
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    @classmethod
    def empty(
        cls, n_steps: int, n_envs: int, obs_shape: tuple[int, ...], memory_dim: int, state: torch.Tensor
    ) -> Rollout:
        return cls(
            obs=torch.zeros((n_steps, n_envs, *obs_shape), dtype=torch.uint8),
            memory=torch.zeros((n_steps, n_envs, memory_dim)),
            episode_start=torch.zeros((n_steps, n_envs), dtype=torch.bool),
            actions=torch.zeros((n_steps, n_envs), dtype=torch.long),
            logprobs=torch.zeros((n_steps, n_envs)),
            values=torch.zeros((n_steps, n_envs)),
            rewards=torch.zeros((n_steps, n_envs)),
            dones=torch.zeros((n_steps, n_envs), dtype=torch.bool),
            initial_state=state.detach().cpu().clone(),  # the rollout lives on the CPU; batches move
        )

    def compute_returns(self, last_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """Generalised advantage estimation. An episode's end (timeouts included) cuts the bootstrap."""
        advantages = torch.zeros_like(self.rewards)
        running = torch.zeros_like(last_value)
        next_value = last_value
        for t in reversed(range(self.rewards.shape[0])):
            nonterminal = (~self.dones[t]).float()
            delta = self.rewards[t] + gamma * next_value * nonterminal - self.values[t]
            running = delta + gamma * gae_lambda * nonterminal * running
            advantages[t] = running
            next_value = self.values[t]
        self.advantages = advantages
        self.returns = advantages + self.values


@dataclass
class Minibatch:
    """Steps laid out [L, B]: B columns of L steps; `mask` marks real steps (recurrent batches are padded)."""

    obs: torch.Tensor
    memory: torch.Tensor
    initial_state: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    mask: torch.Tensor


def _gather(rollout: Rollout, flat_index: torch.Tensor, initial_state: torch.Tensor, mask: torch.Tensor) -> Minibatch:
    """Pick steps by index into the flattened [T*N] rollout; `flat_index` has the minibatch's [L, B] shape."""

    def take(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(0, 1)[flat_index]

    assert rollout.advantages is not None and rollout.returns is not None
    return Minibatch(
        obs=take(rollout.obs),
        memory=take(rollout.memory),
        initial_state=initial_state,
        actions=take(rollout.actions),
        logprobs=take(rollout.logprobs),
        values=take(rollout.values),
        advantages=take(rollout.advantages),
        returns=take(rollout.returns),
        mask=mask,
    )


def step_minibatches(rollout: Rollout, n_minibatches: int, generator: torch.Generator) -> Iterator[Minibatch]:
    """Shuffled single steps, for feed-forward agents: each minibatch is [1, B] (they have no state)."""
    n_steps, n_envs = rollout.actions.shape
    order = torch.randperm(n_steps * n_envs, generator=generator)
    for chunk in order.tensor_split(n_minibatches):
        index = chunk.unsqueeze(0)
        no_state = torch.zeros(len(chunk), 0)
        yield _gather(rollout, index, no_state, torch.ones_like(index, dtype=torch.bool))


def episode_segments(episode_start: torch.Tensor) -> list[tuple[int, int, int]]:
    """Cut each environment's column of the rollout at episode starts: (env, first step, length)."""
    n_steps, n_envs = episode_start.shape
    starts = episode_start.clone()
    starts[0] = True
    segments = []
    for env in range(n_envs):
        begin = [*starts[:, env].nonzero().flatten().tolist(), n_steps]
        segments += [(env, a, b - a) for a, b in itertools.pairwise(begin)]
    return segments


def _per_row(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Flags [B] shaped to broadcast over `like` [B, ...]."""
    return flags.view(-1, *[1] * (like.dim() - 1))


def segment_minibatches(rollout: Rollout, n_minibatches: int, generator: torch.Generator) -> Iterator[Minibatch]:
    """Shuffled whole episode segments, for recurrent agents: each minibatch is [L_max, S] with padding.

    A segment that starts at step 0 continues the episode of the previous rollout, so it starts from the
    state saved before step 0 (zeroed if an episode starts there); every other segment starts an episode,
    from zeros.
    """
    n_envs = rollout.actions.shape[1]
    segments = episode_segments(rollout.episode_start)
    order = torch.randperm(len(segments), generator=generator)
    carried = torch.where(_per_row(rollout.episode_start[0], rollout.initial_state), 0.0, rollout.initial_state)
    for chunk in order.tensor_split(min(n_minibatches, len(segments))):
        picked = [segments[i] for i in chunk.tolist()]
        longest = max(length for _, _, length in picked)
        steps = torch.arange(longest).unsqueeze(1)
        first = torch.tensor([start for _, start, _ in picked])
        lengths = torch.tensor([length for _, _, length in picked])
        envs = torch.tensor([env for env, _, _ in picked])
        mask = steps < lengths
        # Padded positions point at the segment's last real step; the mask removes them from the loss.
        t = first + torch.minimum(steps, lengths - 1)
        index = t * n_envs + envs
        state = torch.where(_per_row(first == 0, carried), carried[envs], 0.0)
        yield _gather(rollout, index, state, mask)


class RewardNormalizer:
    """Divides rewards by the running std of each environment's discounted return, then clips.

    The usual PPO reward scaling (as in SB3's VecNormalize): returns are accumulated per environment and
    reset at episode ends; the running variance uses the parallel-variance update.
    """

    def __init__(self, n_envs: int, gamma: float, clip: float, epsilon: float = 1e-8):
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.returns = np.zeros(n_envs)
        self.mean, self.var, self.count = 0.0, 1.0, epsilon

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        self._update(self.returns)
        self.returns[dones] = 0.0
        return np.clip(rewards / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)

    def _update(self, batch: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = float(batch.mean()), float(batch.var()), batch.size
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean += delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var, self.count = m2 / total, total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count, "returns": self.returns.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]
        self.returns = np.asarray(state["returns"], dtype=np.float64)
