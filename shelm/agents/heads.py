"""The actor-critic heads: Linear -> LayerNorm without affine -> ReLU -> Linear."""

from __future__ import annotations

import math

import torch
from torch import nn


def _head(in_features: int, hidden: int, out_features: int, last_gain: float) -> nn.Sequential:
    head = nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.LayerNorm(hidden, elementwise_affine=False),
        nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
    nn.init.orthogonal_(head[0].weight, gain=math.sqrt(2))
    nn.init.zeros_(head[0].bias)
    # Small last layers start the policy near uniform and the value near zero (the usual PPO practice).
    nn.init.orthogonal_(head[3].weight, gain=last_gain)
    nn.init.zeros_(head[3].bias)
    return head


class ActorCriticHeads(nn.Module):
    """Actor: in -> 128 -> |A| logits. Critic: in -> 512 -> 1 value."""

    def __init__(self, in_features: int, n_actions: int, actor_hidden: int = 128, critic_hidden: int = 512):
        super().__init__()
        self.actor = _head(in_features, actor_hidden, n_actions, last_gain=0.01)
        self.critic = _head(in_features, critic_hidden, 1, last_gain=1.0)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(features), self.critic(features).squeeze(-1)
