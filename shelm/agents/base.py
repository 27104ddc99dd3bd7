"""What every agent's trainable side offers the one PPO trainer.

An agent sees, per environment step, the current frame and the output of its frozen memory module (an
empty vector for the baselines). Recurrent agents also carry a state tensor; feed-forward agents carry an
empty one, so the trainer never branches on the agent type except to choose how to cut minibatches.
"""

from __future__ import annotations

import torch
from torch import nn


class Agent(nn.Module):
    """Base class of the trainable parts. Shapes: N environments, L steps, A actions."""

    is_recurrent: bool = False

    def initial_state(self, n_envs: int) -> torch.Tensor:
        """State at the start of training: [N, ...]; feed-forward agents use an empty [N, 0]."""
        return torch.zeros(n_envs, 0)

    def step(
        self, obs: torch.Tensor, memory: torch.Tensor, state: torch.Tensor, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for N envs: obs uint8 [N, H, W, C], memory [N, M], episode_start bool [N].

        Returns logits [N, A], values [N] and the next state. A recurrent agent zeroes the state of
        environments whose episode starts here before using it.
        """
        raise NotImplementedError

    def observe_memory(self, memory: torch.Tensor) -> None:
        """Called by the trainer after each update with the rollout's memory outputs [T, N, M]: an agent that keeps
        statistics of its memory's outputs updates them here, between updates, so that acting and the update on
        one rollout always see the same statistics. Agents without such statistics ignore it."""

    def forward_sequences(
        self, obs: torch.Tensor, memory: torch.Tensor, initial_state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-evaluate stored steps for the PPO update: obs [L, B, H, W, C], memory [L, B, M].

        Each of the B columns is one episode segment (no episode starts inside it) that begins from
        `initial_state` [B, ...]. Returns logits [L, B, A] and values [L, B].
        """
        raise NotImplementedError
