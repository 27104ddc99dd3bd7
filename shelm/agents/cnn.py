"""CNN-PPO: the papers' Markovian agent, and the trainable side of the language-model-memory agents.

features = concat(h_mem, CNN(o_t)) -> actor-critic heads. Without a memory module h_mem is empty and this
is the CNN-PPO baseline; HELM, HELMv2 and SHELM feed the frozen language model's output as h_mem.
"""

from __future__ import annotations

import torch

from shelm.agents.base import Agent
from shelm.agents.encoders import CNNEncoder
from shelm.agents.heads import ActorCriticHeads


class CNNAgent(Agent):
    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        n_actions: int,
        memory_dim: int = 0,
        cnn_features: int = 1024,
        actor_hidden: int = 128,
        critic_hidden: int = 512,
    ):
        super().__init__()
        self.encoder = CNNEncoder(obs_shape, channels=(64, 128), features=cnn_features)
        self.heads = ActorCriticHeads(memory_dim + cnn_features, n_actions, actor_hidden, critic_hidden)

    def _heads(self, obs: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(torch.cat([memory, self.encoder(obs)], dim=-1))

    def step(self, obs, memory, state, episode_start):
        logits, values = self._heads(obs, memory)
        return logits, values, state

    def forward_sequences(self, obs, memory, initial_state):
        length, batch = obs.shape[:2]
        logits, values = self._heads(obs.flatten(0, 1), memory.flatten(0, 1))
        return logits.view(length, batch, -1), values.view(length, batch)
