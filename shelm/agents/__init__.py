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


def _helmv2_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> FrozenMemory:
    from shelm.memory.helmv2 import build_helmv2_memory

    return build_helmv2_memory(config, obs_shape, device)


def _shelm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> FrozenMemory:
    from shelm.memory.shelm import build_shelm_memory

    return build_shelm_memory(config, obs_shape, device)


def _oracle_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> FrozenMemory:
    from shelm.memory.oracle import build_oracle_memory

    return build_oracle_memory(config, obs_shape, device)


def _cnn_with_memory(config: TrainConfig, shape: tuple[int, int, int], n_actions: int, memory_dim: int) -> Agent:
    """The HELM family's trainable part: the CNN of the current frame, concatenated with the memory, -> heads."""
    return CNNAgent(shape, n_actions, memory_dim, config.cnn_features, config.actor_hidden, config.critic_hidden)


AGENTS: dict[str, AgentSpec] = {
    "cnn": AgentSpec(
        "cnn", "CNN-PPO: the papers' Markovian baseline (CNN 64-128 -> 1024 -> actor-critic heads)", _cnn_with_memory
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
        _cnn_with_memory,
        _helm_memory,
    ),
    "helmv2": AgentSpec(
        "helmv2",
        "HELMv2: image features (CLIP, or EfficientNet-Lite0 offline) mapped into the LM's embedding space -> "
        "frozen LM memory + CNN -> heads",
        _cnn_with_memory,
        _helmv2_memory,
    ),
    "shelm": AgentSpec(
        "shelm",
        "SHELM: top-k retrieved words (retriever symbolic|imagenet|clip) -> frozen LM memory + CNN -> heads; "
        "its memory reads as text (`shelm inspect`)",
        _cnn_with_memory,
        _shelm_memory,
    ),
    "oracle": AgentSpec(
        "oracle",
        "ORACLE control, not a method: the episode's cue read from the env's state (MiniGrid Memory tasks) as a "
        "perfect memory + CNN -> heads; shows what PPO and the heads reach when memory is solved",
        _cnn_with_memory,
        _oracle_memory,
    ),
}


def get_agent_spec(name: str) -> AgentSpec:
    if name not in AGENTS:
        raise ShelmError(f"unknown agent '{name}'; choose one of: {', '.join(AGENTS)} (`shelm agents`)")
    return AGENTS[name]
