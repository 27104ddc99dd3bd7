"""The ablation that located the defect of shelm's former lstm (Impala-PPO) agent on MiniGrid-KeyCorridorS3R1-v0.

Before its fix, shelm's lstm ran one LSTM(256), shared by actor and critic, under the CNN agent's LayerNorm MLP
heads (actor 128, critic 512), and at the papers' settings its policy barely left uniform in 500k steps where
sb3-contrib's RecurrentPPO learned the task. This script trains that former agent with parts swapped one at a
time toward RecurrentPPO's CnnLstmPolicy, through shelm's own trainer and settings (`shelm train`'s arguments):

    VARIANT=sepcritic,linear python experiments/lstm_ablation.py train --env MiniGrid-KeyCorridorS3R1-v0 \
        --agent lstm --steps 300000 --seed 1 --set torch_threads=1 --run-dir runs/diag/lstm-ablation/sepcritic+linear-s1

VARIANT is a comma list of
  sepcritic  the critic gets its own LSTM over the shared CNN features (the actor keeps the first one);
  linear     each LSTM output is read by one linear layer (gain 0.01 for the logits, 1 for the value) in place
             of the LayerNorm MLP heads;
  natcnn     NatureCNN (32-64-64 channels -> 512, orthogonal init, gain sqrt 2) in place of the papers'
             16/32-channel CNN -> 256;
and empty for the former agent itself. `sepcritic,linear` is the agent shelm's lstm now is. The machinery side
(reward normalisation, AdamW's weight decay, Adam's eps) needs no code: `--set norm_reward=false --set
weight_decay=0 --set adam_eps=1e-5`. The trials are in docs/runs/evidence/diag-keycorridor/lstm-ablation/.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

import torch
from torch import nn

from shelm.agents import get_agent_spec, register_agent
from shelm.agents.base import Agent
from shelm.agents.encoders import CNNEncoder
from shelm.agents.heads import ActorCriticHeads
from shelm.agents.lstm import orthogonal_linear, orthogonal_lstm, run_lstm
from shelm.cli import main

PARTS = ("sepcritic", "linear", "natcnn")


class NatureCNN(nn.Module):
    """SB3's NatureCNN over uint8 HxWxC frames: 32-64-64 channels -> 512, orthogonal init with gain sqrt 2."""

    def __init__(self, obs_shape: tuple[int, int, int]):
        super().__init__()
        height, width, channels = obs_shape
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 8, 4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Linear(flat, 512)
        self.features = 512
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.orthogonal_(module.weight, math.sqrt(2))
                nn.init.zeros_(module.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(self.convs(obs.permute(0, 3, 1, 2).float().div_(255.0))))


class AblatedLSTMAgent(Agent):
    """The former lstm agent with the parts named in `parts` swapped; state [N, 2 or 4, hidden]."""

    is_recurrent = True

    def __init__(self, obs_shape: tuple[int, int, int], n_actions: int, hidden: int, parts: set[str]):
        super().__init__()
        self.encoder = NatureCNN(obs_shape) if "natcnn" in parts else CNNEncoder(obs_shape, (16, 32), 256)
        self.lstm = orthogonal_lstm(self.encoder.features, hidden)
        self.critic_lstm = orthogonal_lstm(self.encoder.features, hidden) if "sepcritic" in parts else None
        self.linear_heads = "linear" in parts
        if self.linear_heads:
            self.actor, self.critic = orthogonal_linear(hidden, n_actions, 0.01), orthogonal_linear(hidden, 1, 1.0)
        else:
            self.heads = ActorCriticHeads(hidden, n_actions, 128, 512)
        self.hidden = hidden

    def initial_state(self, n_envs: int) -> torch.Tensor:
        return torch.zeros(n_envs, 2 if self.critic_lstm is None else 4, self.hidden)

    def _forward(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        actor_out, next_state = run_lstm(self.lstm, features, state[:, :2])
        critic_out = actor_out
        if self.critic_lstm is not None:
            critic_out, critic_state = run_lstm(self.critic_lstm, features, state[:, 2:])
            next_state = torch.cat([next_state, critic_state], dim=1)
        if self.linear_heads:
            return self.actor(actor_out), self.critic(critic_out).squeeze(-1), next_state
        return self.heads(actor_out)[0], self.heads(critic_out)[1], next_state

    def step(self, obs, memory, state, episode_start):
        state = state * (~episode_start).to(state.dtype).view(-1, 1, 1)
        logits, values, state = self._forward(self.encoder(obs).unsqueeze(0), state)
        return logits[0], values[0], state

    def forward_sequences(self, obs, memory, initial_state):
        length, batch = obs.shape[:2]
        features = self.encoder(obs.flatten(0, 1)).view(length, batch, -1)
        logits, values, _ = self._forward(features, initial_state)
        return logits, values


def run() -> int:
    parts = {part for part in os.environ.get("VARIANT", "").split(",") if part}
    unknown = parts - set(PARTS)
    if unknown:
        print(
            f"VARIANT={os.environ['VARIANT']}: unknown part(s) {sorted(unknown)}; use {', '.join(PARTS)}",
            file=sys.stderr,
        )
        return 2
    ablated = dataclasses.replace(
        get_agent_spec("lstm"),
        build=lambda config, shape, n_actions, memory_dim: AblatedLSTMAgent(
            shape, n_actions, config.lstm_hidden, parts
        ),
    )
    register_agent(ablated, replace=True)
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
