"""CNN-PPO: the papers' Markovian agent, and the trainable side of the language-model-memory agents.

features = fuse(h_mem, CNN(o_t)) -> actor-critic heads. Without a memory module h_mem is empty and this
is the CNN-PPO baseline; HELM, HELMv2 and SHELM feed the frozen language model's output as h_mem.

How the two streams meet is the `fusion`:
- 'concat' (the papers'): the raw vectors side by side. Their scales are free: the frozen memory's is fixed,
  while the CNN's features grow as PPO trains (the heads' LayerNorm makes the policy blind to their overall
  scale, so nothing holds it back). Once they are many times the memory's norm, the memory moves the heads'
  first layer by a vanishing fraction and its weights learn ever slower.
- 'normalized': each stream divided by its own L2 norm before the concatenation, so each has the same voice in
  the heads at every step of training, whatever either stream's scale.
- 'standardized': as 'normalized', but the memory is first standardised per dimension with the running mean and
  variance of the outputs it gave in training. A language model's output is mostly a vector common to every
  step (a few dimensions carry most of its norm), so what the memory says about this episode is a small
  perturbation of it; standardising brings that perturbation to the front. The statistics are buffers of the
  agent (saved in its checkpoint) and change only between updates (`observe_memory`), so acting and the update
  on one rollout see the same ones.
With one stream (CNN-PPO, no memory) there is nothing to fuse and the features go in as they are.
"""

from __future__ import annotations

import torch

from shelm.agents.base import Agent
from shelm.agents.encoders import CNNEncoder
from shelm.agents.heads import ActorCriticHeads
from shelm.config import DEFAULT_FUSION, FUSIONS


def unit_norm(features: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each row divided by its L2 norm (rows of zeros stay zero)."""
    return features / features.norm(dim=-1, keepdim=True).clamp_min(eps)


class CNNAgent(Agent):
    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        n_actions: int,
        memory_dim: int = 0,
        cnn_features: int = 1024,
        actor_hidden: int = 128,
        critic_hidden: int = 512,
        fusion: str = DEFAULT_FUSION,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion '{fusion}' is not one of {FUSIONS}")
        self.fusion = fusion
        if fusion == "standardized" and memory_dim:  # the running mean and variance of the memory's outputs
            self.register_buffer("memory_mean", torch.zeros(memory_dim))
            self.register_buffer("memory_var", torch.ones(memory_dim))
            self.register_buffer("memory_count", torch.zeros((), dtype=torch.float64))  # rows folded into them
        self.encoder = CNNEncoder(obs_shape, channels=(64, 128), features=cnn_features)
        self.heads = ActorCriticHeads(memory_dim + cnn_features, n_actions, actor_hidden, critic_hidden)

    def fuse(self, memory: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """The heads' input: the memory's output [..., memory_dim] and the CNN's features [..., cnn_features]
        joined by this agent's `fusion`."""
        if self.fusion != "concat" and memory.shape[-1] > 0:
            if self.fusion == "standardized":
                memory = (memory - self.memory_mean) * torch.rsqrt(self.memory_var + 1e-6)
            memory, frame = unit_norm(memory), unit_norm(frame)
        return torch.cat([memory, frame], dim=-1)

    def _heads(self, obs: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.fuse(memory, self.encoder(obs)))

    def observe_memory(self, memory: torch.Tensor) -> None:
        """Fold a rollout's memory outputs into the running mean and variance (the parallel-variance update)."""
        if self.fusion != "standardized" or memory.shape[-1] == 0:
            return
        rows = memory.reshape(-1, memory.shape[-1]).to(self.memory_mean.device, torch.float64)
        count, total = float(self.memory_count), float(self.memory_count) + rows.shape[0]
        mean, var = self.memory_mean.double(), self.memory_var.double()
        batch_mean, batch_var = rows.mean(0), rows.var(0, unbiased=False)
        delta = batch_mean - mean
        if count == 0:
            mean, var = batch_mean, batch_var
        else:
            mean = mean + delta * rows.shape[0] / total
            var = (var * count + batch_var * rows.shape[0] + delta.square() * count * rows.shape[0] / total) / total
        self.memory_mean.copy_(mean)
        self.memory_var.copy_(var)
        self.memory_count.fill_(total)

    def step(self, obs, memory, state, episode_start):
        logits, values = self._heads(obs, memory)
        return logits, values, state

    def forward_sequences(self, obs, memory, initial_state):
        length, batch = obs.shape[:2]
        logits, values = self._heads(obs.flatten(0, 1), memory.flatten(0, 1))
        return logits.view(length, batch, -1), values.view(length, batch)
