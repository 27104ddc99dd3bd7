"""The agents: each a trainable part (`Agent`) plus, for the HELM family, a frozen memory module.

`AGENTS` is the registry (a `shelm.registry.Registry`: a name once, `replace=True` to replace it). Each
`AgentSpec` says how to build the agent and its memory, what the agent can do (whether it has a language-model
memory, what its words are, how it is labelled) and which trainer trains it, so that no other module needs to know
agents by name. `resolve_config` turns a request (env, agent, overrides)
into the run's full config: defaults, the papers' preset, the overrides, then each 'auto' setting resolved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from shelm.agents.base import Agent
from shelm.agents.cnn import CNNAgent
from shelm.agents.lstm import LSTMAgent
from shelm.agents.trxl import TrXLAgent
from shelm.config import DEFAULT_FUSION, NO_INSTRUCTION, TrainConfig, parse_value
from shelm.envs import info_keys, pair_preset, task_preset
from shelm.info_keys import SYMBOLIC_VIEW
from shelm.memory import FrozenMemory
from shelm.precision import pick_device, resolve_dtype
from shelm.probe import EnvProbe
from shelm.registry import Registry

# The analyses of `shelm analyze` that read a language-model memory, and the one every policy supports (which of
# them a run can have is its trainer's to say: `shelm.trainers`).
LM_ANALYSES = ("distances", "tokens", "attention")
ANY_AGENT_ANALYSES = ("robustness",)


def _no_details(config: TrainConfig) -> list[str]:
    return []


def _nothing_to_resolve(config: TrainConfig) -> None:
    return None


@dataclass(frozen=True)
class AgentSpec:
    """One agent: how to build it, and what it can do."""

    name: str
    summary: str
    build: Callable[[TrainConfig, tuple[int, int, int], int, int], Agent] | None = None
    """(config, obs_shape, n_actions, memory_dim) -> the trainable part of the PPO policy; None for an agent whose
    trainer builds its own networks (DreamerV2)."""
    build_memory: Callable[[TrainConfig, EnvProbe, torch.device], FrozenMemory] | None = None
    """(config, the run's env probe, device) -> the frozen memory module; None for agents without one. What the
    memory needs of the environment (its frames' shape, what its info carries, frames to calibrate on) it reads
    from the probe."""
    has_language_model: bool = False
    """Whether its memory is a frozen language model (its window, inputs and attention can be analysed)."""
    has_trained_memory: bool = False
    """Whether its trainable part learns a memory of the episode's past steps (a recurrent state, an attended window
    of past steps, a recurrent world model), where the HELM family's memory (`build_memory`) is frozen."""
    words: Callable[[TrainConfig], str] | None = None
    """What the words its memory shows are (`shelm inspect`), e.g. 'symbolic' for SHELM's retriever; None when
    it shows none."""
    details: Callable[[TrainConfig], list[str]] = _no_details
    """The settings that tell this agent's variants apart on plots and tables (e.g. SHELM's retriever, marked
    'oracle' where its words are read from the environment's state)."""
    resolve_auto: Callable[[TrainConfig], None] = _nothing_to_resolve
    """Replaces the config's 'auto' settings that depend on this agent with what will run."""
    paper_settings: dict[str, Any] = field(default_factory=dict)
    """Settings the papers used for this agent on every task they report, applied with their per-task presets."""
    is_control: bool = False
    """A control, not a method (it is given what no agent can see); labelled so everywhere."""
    presets_of: str | None = None
    """The agent whose paper presets this one trains with (a control trains as the method it stands in for)."""
    own_settings: str | None = None
    """The prefix of the settings only this agent reads (e.g. 'trxl_'); every other agent ignores them."""
    trainer: str = "ppo"
    """The name of what trains it in the trainer registry (`shelm.trainers.TRAINERS`): 'ppo', shelm's PPO trainer
    (`shelm.ppo`, whose policy `build` makes), or 'dreamer', sheeprl's DreamerV2 on shelm's environments
    (`shelm.dreamer`). What a run of the agent can do besides training (resuming, playing, `shelm inspect`, which
    analyses apply) is that trainer object's to say."""

    @property
    def ignored_settings(self) -> tuple[str, ...]:
        """Settings that cannot change what this agent computes, so a trial of it made with other values of them is
        the same trial: without a memory there is nothing to fuse (`fusion`), and the settings another agent owns
        (`own_settings`) are not this one's."""
        others = {spec.own_settings for spec in AGENTS.values() if spec.own_settings and spec is not self}
        owned_elsewhere = tuple(
            f.name for f in dataclasses.fields(TrainConfig) if any(f.name.startswith(prefix) for prefix in others)
        )
        return owned_elsewhere if self.build_memory is not None else ("fusion", *owned_elsewhere)

    @property
    def has_memory(self) -> bool:
        """Whether it remembers the episode's past steps at all: a frozen memory (the HELM family, the oracle
        control) or one it learns (`has_trained_memory`); a Markovian agent (cnn) does not."""
        return self.build_memory is not None or self.has_trained_memory

    def label(self, config: TrainConfig) -> str:
        """The agent plus what tells its variants apart, e.g. 'shelm (symbolic oracle, lm_layers=2)'."""
        details = self.details(config)
        if self.has_language_model and config.lm_layers:
            details = [*details, f"lm_layers={config.lm_layers}"]
        if self.has_language_model and config.instruction != NO_INSTRUCTION:
            details = [*details, f"instruction={config.instruction}"]
        if self.build_memory is not None and config.fusion != DEFAULT_FUSION:
            details = [*details, f"fusion={config.fusion}"]
        name = f"{self.name} [control]" if self.is_control else self.name
        return f"{name} ({', '.join(details)})" if details else name


def _helm_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> FrozenMemory:
    from shelm.memory.helm import build_helm_memory  # imports transformers only when a HELM agent is built

    return build_helm_memory(config, probe, device)


def _helmv2_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> FrozenMemory:
    from shelm.memory.helmv2 import build_helmv2_memory

    return build_helmv2_memory(config, probe, device)


def _shelm_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> FrozenMemory:
    from shelm.memory.shelm import build_shelm_memory

    return build_shelm_memory(config, probe, device)


def _oracle_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> FrozenMemory:
    from shelm.memory.oracle import build_oracle_memory

    return build_oracle_memory(config, probe, device)


def _cnn_with_memory(config: TrainConfig, shape: tuple[int, int, int], n_actions: int, memory_dim: int) -> Agent:
    """The HELM family's trainable part: the CNN of the current frame, fused with the memory, -> heads."""
    return CNNAgent(
        shape, n_actions, memory_dim, config.cnn_features, config.actor_hidden, config.critic_hidden, config.fusion
    )


def _shelm_retriever(config: TrainConfig) -> None:
    on_grid_world = SYMBOLIC_VIEW in info_keys(config.env_id)  # the symbolic retriever's input, every step
    if config.retriever == "auto":  # the symbolic oracle where the env has a symbolic view, else words from pixels
        config.retriever = "symbolic" if on_grid_world else "regions"
    if config.retriever == "regions" and config.region_grid == "auto":  # a grid world's cells are its objects' regions
        config.region_grid = "cells" if on_grid_world else "4x4"


def _shelm_details(config: TrainConfig) -> list[str]:
    """SHELM's retriever, marked where it is an oracle (its registered inputs say so): 'symbolic oracle'."""
    from shelm.memory.retrievers import retriever_label  # imports the retrievers' model libraries only when asked

    return [retriever_label(config.retriever)]


def _trxl(config: TrainConfig, shape: tuple[int, int, int], n_actions: int, memory_dim: int) -> Agent:
    return TrXLAgent(
        shape,
        n_actions,
        config.trxl_layers,
        config.trxl_heads,
        config.trxl_dim,
        config.trxl_memory_length,
        config.trxl_reconstruction_coef,
        config.trxl_positional_encoding,
    )


def _trxl_details(config: TrainConfig) -> list[str]:
    """The Transformer-XL settings a run changed from their defaults, e.g. 'trxl_memory_length=16'."""
    defaults = TrainConfig()
    keys = ("trxl_layers", "trxl_heads", "trxl_dim", "trxl_memory_length", "trxl_reconstruction_coef")
    keys += ("trxl_positional_encoding",)
    return [f"{key}={getattr(config, key)}" for key in keys if getattr(config, key) != getattr(defaults, key)]


def _helmv2_encoder(config: TrainConfig) -> None:
    if config.image_encoder == "auto":
        config.image_encoder = "imagenet"


BUILT_IN_AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        "cnn", "CNN-PPO: the papers' Markovian baseline (CNN 64-128 -> 1024 -> actor-critic heads)", _cnn_with_memory
    ),
    AgentSpec(
        "lstm",
        "Impala-PPO: the papers' recurrent baseline (CNN 16-32 -> 256 -> actor and critic LSTMs 256 -> linear "
        "heads, truncated BPTT)",
        lambda c, shape, n_actions, memory_dim: LSTMAgent(shape, n_actions, c.lstm_hidden),
        has_trained_memory=True,
    ),
    AgentSpec(
        "trxl",
        "TrXL-PPO: a trained Transformer-XL memory, CleanRL ppo_trxl's peer (CNN 32-64 -> trxl_dim -> trxl_layers "
        "pre-LN layers attending over the episode's last trxl_memory_length steps -> actor-critic)",
        _trxl,
        details=_trxl_details,
        has_trained_memory=True,
        own_settings="trxl_",
    ),
    AgentSpec(
        "helm",
        "HELM: FrozenHopfield -> frozen LM memory (default SmolLM2-135M, offline) + CNN -> heads",
        _cnn_with_memory,
        _helm_memory,
        has_language_model=True,
        words=lambda config: "nearest token (FrozenHopfield)",
        # The HELM authors' per-task configs leave FrozenHopfield's beta unset, so their top-level value, 100,
        # is what every task ran with (shelm's default of 1 maps each frame to nearly the mean embedding).
        paper_settings={"beta": 100.0},
    ),
    AgentSpec(
        "helmv2",
        "HELMv2: image features (CLIP, or EfficientNet-Lite0 offline) mapped into the LM's embedding space -> "
        "frozen LM memory + CNN -> heads",
        _cnn_with_memory,
        _helmv2_memory,
        has_language_model=True,
        words=lambda config: "nearest token (affine image features)",
        details=lambda config: [config.image_encoder],
        resolve_auto=_helmv2_encoder,
    ),
    AgentSpec(
        "shelm",
        "SHELM: top-k retrieved words (retriever regions|imagenet|clip from pixels, or the symbolic oracle: object "
        "names from the environment's state) -> frozen LM memory + CNN -> heads; its memory reads as text "
        "(`shelm inspect`)",
        _cnn_with_memory,
        _shelm_memory,
        has_language_model=True,
        words=lambda config: config.retriever,
        details=_shelm_details,
        resolve_auto=_shelm_retriever,
    ),
    AgentSpec(
        "oracle",
        "ORACLE control, not a method: the episode's cue read from the env's state (MiniGrid Memory tasks) as a "
        "perfect memory + CNN -> heads; shows what PPO and the heads reach when memory is solved",
        _cnn_with_memory,
        _oracle_memory,
        words=lambda config: "the cue, read from the environment (oracle)",
        is_control=True,
        # It trains with SHELM's per-task settings, so that it differs from SHELM only in its memory.
        presets_of="shelm",
    ),
    AgentSpec(
        "dreamerv2",
        "DreamerV2: the SHELM paper's model-based baseline, sheeprl's implementation trained on shelm's envs "
        "(world model + imagined actor-critic; the dreamer extra); --set dreamer_size=sheeprl for its full size",
        details=lambda config: [] if config.dreamer_size == "small" else [f"dreamer_size={config.dreamer_size}"],
        has_trained_memory=True,  # its world model's recurrent state
        own_settings="dreamer_",
        trainer="dreamer",
    ),
)
"""The agents shelm ships, registered in this order below `register_agent`."""

AGENTS: Registry[AgentSpec] = Registry("agent", listed_by="`shelm agents`")
"""Every agent by name, the built-in ones first."""


def register_agent(spec: AgentSpec, *, replace: bool = False) -> None:
    """Make an agent available to every command (`shelm train --agent NAME`, sweeps, reports) by its name; a name
    already registered is refused unless `replace`."""
    AGENTS.register(spec.name, spec, replace=replace)


def unregister_agent(name: str) -> None:
    """Forget an agent registered with `register_agent` (tests, notebooks); a name not registered is left alone."""
    if name in AGENTS:
        AGENTS.unregister(name)


def get_agent_spec(name: str) -> AgentSpec:
    """The agent registered as `name`, or one line naming the registered ones."""
    return AGENTS.get(name)


for built_in in BUILT_IN_AGENTS:
    register_agent(built_in)


def language_model_agents() -> list[str]:
    """The registered agents whose memory is a frozen language model."""
    return [name for name, spec in AGENTS.items() if spec.has_language_model]


def paper_preset(env_id: str, agent: str) -> dict[str, Any]:
    """The papers' settings for this pair: the task's own, the agent's, then the pair's row. Where the papers have
    no row for the pair, only the task's settings apply."""
    spec = get_agent_spec(agent)
    row = pair_preset(env_id, spec.presets_of or agent)
    if row is None:
        return task_preset(env_id)
    return {**task_preset(env_id), **spec.paper_settings, **row}


def resolve_config(env_id: str, agent: str, overrides: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Defaults, then the paper preset (unless `preset=none` is among the overrides), then the overrides; then
    every 'auto' setting resolved, so that config.json, the CLI and every page name what ran (the retriever
    that produced words, the precisions).

    Returns the validated config and the keys the preset set (for config.json).
    """
    unknown = [k for k in overrides if k not in {f.name for f in dataclasses.fields(TrainConfig)}]
    if unknown:
        parse_value(unknown[0], "")  # raises the unknown-key error with its suggestion
    spec = get_agent_spec(agent)
    applied = paper_preset(env_id, agent) if overrides.get("preset", "paper") == "paper" else {}
    config = TrainConfig(**{**applied, **overrides, "env_id": env_id, "agent": agent})
    config.validate()
    spec.resolve_auto(config)
    device = pick_device(config.device)
    config.precision = resolve_dtype(config.precision, device)
    config.lm_dtype = resolve_dtype(config.lm_dtype, device)
    return config, {k: v for k, v in applied.items() if k not in overrides}
