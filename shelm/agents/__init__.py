"""The agents: each a trainable part (`Agent`) plus, for the HELM family, a frozen memory module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from shelm.agents.base import Agent
from shelm.agents.cnn import CNNAgent
from shelm.agents.lstm import LSTMAgent
from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory import FrozenMemory


@dataclass(frozen=True)
class AgentSpec:
    name: str
    summary: str
    build: Callable[[TrainConfig, tuple[int, int, int], int, int], Agent]
    """(config, obs_shape, n_actions, memory_dim) -> the trainable agent."""
    build_memory: Callable[[TrainConfig, tuple[int, int, int], torch.device], FrozenMemory] | None = None
    """(config, obs_shape, device) -> the frozen memory module; None for agents without one."""


def _helm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> FrozenMemory:
    from shelm.memory.helm import build_helm_memory  # imports transformers only when a HELM agent is built

    return build_helm_memory(config, obs_shape, device)


AGENTS: dict[str, AgentSpec] = {
    "cnn": AgentSpec(
        "cnn",
        "CNN-PPO: the papers' Markovian baseline (CNN 64-128 -> 1024 -> actor-critic heads)",
        lambda c, shape, n_actions, memory_dim: CNNAgent(
            shape, n_actions, memory_dim, c.cnn_features, c.actor_hidden, c.critic_hidden
        ),
    ),
    "lstm": AgentSpec(
        "lstm",
        "Impala-PPO: the papers' recurrent baseline (CNN 16-32 -> 256 -> LSTM 256 -> heads, truncated BPTT)",
        lambda c, shape, n_actions, memory_dim: LSTMAgent(
            shape, n_actions, c.lstm_hidden, c.actor_hidden, c.critic_hidden
        ),
    ),
    "helm": AgentSpec(
        "helm",
        "HELM: FrozenHopfield -> frozen LM memory (default SmolLM2-135M, offline) + CNN -> heads",
        lambda c, shape, n_actions, memory_dim: CNNAgent(
            shape, n_actions, memory_dim, c.cnn_features, c.actor_hidden, c.critic_hidden
        ),
        lambda c, shape, device: _helm_memory(c, shape, device),
    ),
}


def get_agent_spec(name: str) -> AgentSpec:
    if name not in AGENTS:
        raise ShelmError(f"unknown agent '{name}'; choose one of: {', '.join(AGENTS)} (`shelm agents`)")
    return AGENTS[name]
