"""The agents: each a trainable part (`Agent`) plus, for the HELM family, a frozen memory module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    build_memory: Callable[[TrainConfig, tuple[int, int, int]], FrozenMemory] | None = None
    """(config, obs_shape) -> the frozen memory module; None for agents without one."""


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
}


def get_agent_spec(name: str) -> AgentSpec:
    if name not in AGENTS:
        raise ShelmError(f"unknown agent '{name}'; choose one of: {', '.join(AGENTS)} (`shelm agents`)")
    return AGENTS[name]
