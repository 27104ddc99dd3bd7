"""Impala-PPO: the papers' recurrent baseline.

A smaller CNN (16, 32 channels) -> 256 features -> LSTM(256) -> actor-critic heads. The PPO update runs the
LSTM over whole episode segments of the rollout (truncated backpropagation through time), each segment
starting from the state saved at rollout start (first segment) or from zeros (segments that begin an
episode). Rollout steps and updates use the same `nn.LSTM`, so stored log-probabilities are reproduced
exactly at the first update epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from shelm.agents.base import Agent
from shelm.agents.encoders import CNNEncoder
from shelm.agents.heads import ActorCriticHeads


class LSTMAgent(Agent):
    is_recurrent = True

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        n_actions: int,
        lstm_hidden: int = 256,
        actor_hidden: int = 128,
        critic_hidden: int = 512,
    ):
        super().__init__()
        self.encoder = CNNEncoder(obs_shape, channels=(16, 32), features=256)
        self.lstm = nn.LSTM(256, lstm_hidden)
        for name, param in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)
            else:
                nn.init.orthogonal_(param)
        self.heads = ActorCriticHeads(lstm_hidden, n_actions, actor_hidden, critic_hidden)
        self.hidden = lstm_hidden

    def initial_state(self, n_envs: int) -> torch.Tensor:
        """[N, 2, hidden]: the LSTM's h and c."""
        return torch.zeros(n_envs, 2, self.hidden)

    def _run(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0, c0 = state[:, 0].unsqueeze(0).contiguous(), state[:, 1].unsqueeze(0).contiguous()
        out, (h, c) = self.lstm(features, (h0, c0))
        return out, torch.stack([h[0], c[0]], dim=1)

    def step(self, obs, memory, state, episode_start):
        state = state * (~episode_start).to(state.dtype).view(-1, 1, 1)
        out, state = self._run(self.encoder(obs).unsqueeze(0), state)
        logits, values = self.heads(out[0])
        return logits, values, state

    def forward_sequences(self, obs, memory, initial_state):
        length, batch = obs.shape[:2]
        features = self.encoder(obs.flatten(0, 1)).view(length, batch, -1)
        out, _ = self._run(features, initial_state)
        return self.heads(out)
