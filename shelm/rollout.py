"""Rollout storage, returns, minibatches and the running statistics PPO keeps between iterations.

One `Rollout` holds T steps of N environments. Its `memory` slot keeps the frozen memory module's output
for every step, so the update re-evaluates only the trainable parts. For windowed agents (Transformer-XL, see
`shelm.agents.base`) it also keeps each step's record, from which `window_minibatches` rebuilds the window every
step acted on.
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
    records: torch.Tensor | None = None  # [T, N, record_size]: windowed agents' record of each step (else size 0)
    states: torch.Tensor | None = None
    """[T, N, ...]: the recurrent state each step was acted from, where the update starts pieces of episodes from
    them (`segment_minibatches` with a `bptt_length`); None where it does not."""

    @classmethod
    def empty(
        cls,
        n_steps: int,
        n_envs: int,
        obs_shape: tuple[int, ...],
        memory_dim: int,
        state: torch.Tensor,
        record_size: int = 0,
        keep_states: bool = False,
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
            records=torch.zeros((n_steps, n_envs, record_size)),
            states=torch.zeros((n_steps, *state.shape)) if keep_states else None,
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
    window_rows: torch.Tensor | None = None
    """Windowed agents: the table of stored records [R, record_size] the steps' windows are rows of."""
    window_index: torch.Tensor | None = None
    """Windowed agents: [B, window] the row of `window_rows` in each slot of each step's window, oldest first."""
    window_valid: torch.Tensor | None = None
    """Windowed agents: [B, window] whether the slot holds a step of the step's own episode."""


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


def window_minibatches(rollout: Rollout, n_minibatches: int, generator: torch.Generator) -> Iterator[Minibatch]:
    """Shuffled single steps for windowed agents, each with the window it acted on: minibatches [1, B] as
    `step_minibatches` cuts them, plus the window of each step as rows of one table.

    The table holds, per environment, the window carried over from before the rollout (the agent's state before
    step 0: [N, window, record_size + 1], see `shelm.agents.base`) and then the record of each rollout step, so
    env n's row p is at n * (window + T) + p and step t's window is rows t .. t + window - 1 of its env, the
    steps t - window .. t - 1. A slot is valid when its step belongs to step t's episode: at or after the last
    episode start at or before t, and, for a carried slot, valid in the carried state (no episode started since).
    """
    assert rollout.records is not None
    n_steps, n_envs = rollout.actions.shape
    record_size = rollout.records.shape[-1]
    window = rollout.initial_state.shape[1]
    carried = rollout.initial_state
    rows = torch.cat([carried[..., :record_size], rollout.records.transpose(0, 1)], dim=1).reshape(-1, record_size)
    carried_valid = carried[..., -1] > 0  # [N, window]
    # The last episode start at or before each step; far enough back that no slot is cut where there is none.
    steps = torch.arange(n_steps).unsqueeze(1).expand(n_steps, n_envs)
    last_start = torch.where(rollout.episode_start, steps, -window - 1).cummax(dim=0).values  # [T, N]
    slots = torch.arange(window)
    order = torch.randperm(n_steps * n_envs, generator=generator)
    for chunk in order.tensor_split(n_minibatches):
        t, env = chunk // n_envs, chunk % n_envs
        position = t.unsqueeze(1) + slots  # [B, window]: each slot's row within its env's rows
        step = position - window  # the rollout step of each slot (negative: carried over)
        valid = step >= last_start[t, env].unsqueeze(1)
        valid &= (step >= 0) | carried_valid[env.unsqueeze(1), position.clamp(max=window - 1)]
        index = chunk.unsqueeze(0)
        batch = _gather(rollout, index, torch.zeros(len(chunk), 0), torch.ones_like(index, dtype=torch.bool))
        batch.window_rows = rows
        batch.window_index = env.unsqueeze(1) * (window + n_steps) + position
        batch.window_valid = valid
        yield batch


def episode_segments(episode_start: torch.Tensor, longest: int = 0) -> list[tuple[int, int, int]]:
    """Cut each environment's column of the rollout at episode starts, and every `longest` steps of an episode where
    it is given (> 0): (env, first step, length)."""
    n_steps, n_envs = episode_start.shape
    starts = episode_start.clone()
    starts[0] = True
    segments = []
    for env in range(n_envs):
        begin = [*starts[:, env].nonzero().flatten().tolist(), n_steps]
        for first, end in itertools.pairwise(begin):
            piece = longest or end - first
            segments += [(env, start, min(piece, end - start)) for start in range(first, end, piece)]
    return segments


def _per_row(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Flags [B] shaped to broadcast over `like` [B, ...]."""
    return flags.view(-1, *[1] * (like.dim() - 1))


def segment_minibatches(
    rollout: Rollout, n_minibatches: int, generator: torch.Generator, bptt_length: int = 0
) -> Iterator[Minibatch]:
    """Shuffled episode segments, for recurrent agents: each minibatch is [L_max, S] with padding.

    Without a `bptt_length`, each segment is a whole episode's part of the rollout: one that starts at step 0
    continues the episode of the previous rollout, so it starts from the state saved before step 0 (zeroed if an
    episode starts there); every other one starts an episode, from zeros. With one, episodes are cut into pieces of
    at most `bptt_length` steps, and a piece that does not start an episode starts from the state its first step
    was acted from (`Rollout.states`), so the update recomputes exactly what acting computed.
    """
    n_envs = rollout.actions.shape[1]
    segments = episode_segments(rollout.episode_start, bptt_length)
    order = torch.randperm(len(segments), generator=generator)
    assert not bptt_length or rollout.states is not None, "pieces of episodes start from the states the rollout kept"

    def start_states(first: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """The state each segment starts from: zeros where an episode starts, else the state its first step was
        acted from (without kept states only a segment at step 0 continues an episode: the rollout's initial one)."""
        kept = rollout.initial_state[envs] if rollout.states is None else rollout.states[first, envs]
        return torch.where(_per_row(rollout.episode_start[first, envs], kept), 0.0, kept)

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
        yield _gather(rollout, index, start_states(first, envs), mask)


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
