"""What acts: a policy (the frozen memory plus the trainable agent) and an actor that carries its state.

Training, evaluation and inspection all act through `Actor`: observations, infos and episode starts go in;
the action, its log-probability, the value and the memory's output come out. The memory reads each
observation exactly once, when it arrives (`Actor.observe`), and that output is reused for acting, for the
rollout and for the bootstrap value. Actions are greedy (arg-max) or sampled from an explicit generator, so a
run's randomness is the seed's and nothing else's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch.distributions import Categorical

from shelm.agents import get_agent_spec, language_model_agents
from shelm.agents.base import Agent
from shelm.config import NO_INSTRUCTION, TrainConfig
from shelm.errors import ShelmError
from shelm.memory import FrozenMemory, ReadableMemory
from shelm.memory.base import LanguageModelMemory
from shelm.precision import autocast, pick_device, resolve_dtype
from shelm.probe import EnvProbe


@dataclass
class Policy:
    """The frozen memory (or None) and the trainable agent, on one device and in one precision."""

    agent: Agent
    memory: FrozenMemory | None
    device: torch.device
    precision: str
    """The agent's compute, 'float32' or 'bfloat16' (the config's, with 'auto' resolved for `device`)."""
    language_model: LanguageModelMemory | None = None
    """The memory as a language model (its LM inputs, window and attention, which the analyses read), where the
    agent's spec says it has one (`has_language_model`); else None."""
    readable: ReadableMemory | None = None
    """The memory as words (`shelm inspect`), where the agent's spec names its words (`words`); else None."""

    @property
    def memory_dim(self) -> int:
        return 0 if self.memory is None else self.memory.output_dim

    def read_memory(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """The memory's output [N, M] for obs (an empty [N, 0] without a memory); call once per observation."""
        if self.memory is None:
            return torch.zeros(obs.shape[0], 0, device=self.device)
        return self.memory.step(obs, episode_start, info)

    def act(
        self, obs: torch.Tensor, memory: torch.Tensor, state: torch.Tensor, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`agent.step` in the policy's precision; logits, values and the next state come back float32."""
        with autocast(self.device, self.precision):
            logits, values, state = self.agent.step(obs, memory, state, episode_start)
        return logits.float(), values.float(), state.float()


def build_policy(config: TrainConfig, probe: EnvProbe) -> Policy:
    """The agent of `config` and its frozen memory, built from the agent registry for the env `probe` looked at.

    An `instruction` is refused in one line where the agent has no language memory to read it into, or where the
    environment gives no text under that key; so is a memory that lacks what its agent's spec says it offers."""
    spec = get_agent_spec(config.agent)
    if config.instruction != NO_INSTRUCTION:
        check_instruction(config, probe, spec.has_language_model)
    if spec.build is None:
        raise ShelmError(f"agent '{config.agent}' builds no shelm PPO policy; `shelm train` and `shelm eval` run it")
    device = pick_device(config.device)
    memory = spec.build_memory(config, probe, device) if spec.build_memory else None
    memory_dim = 0 if memory is None else memory.output_dim
    agent = spec.build(config, probe.obs_shape, probe.n_actions, memory_dim).to(device)
    if config.bptt_length and not agent.is_recurrent:
        raise ShelmError(
            f"--set bptt_length={config.bptt_length}: agent '{config.agent}' has no recurrent state the update "
            "backpropagates through; leave bptt_length=0"
        )
    return Policy(
        agent=agent,
        memory=memory,
        device=device,
        precision=resolve_dtype(config.precision, device),
        language_model=_offered(config.agent, memory, LanguageModelMemory, spec.has_language_model),
        readable=_offered(config.agent, memory, ReadableMemory, spec.words is not None),
    )


CapabilityT = TypeVar("CapabilityT")


def _offered(
    agent: str, memory: FrozenMemory | None, capability: type[CapabilityT], declared: bool
) -> CapabilityT | None:
    """`memory` as `capability` where the agent's spec declares it; a memory that does not offer what its spec
    declares is refused in one line (an agent registered with a spec its memory does not fit)."""
    if not declared:
        return None
    if not isinstance(memory, capability):
        raise ShelmError(
            f"agent '{agent}': its spec says its memory is a {capability.__name__}, but {type(memory).__name__} does "
            f"not offer what one does ({capability.__module__}.{capability.__name__}); fix the agent's registration"
        )
    return memory


def check_instruction(config: TrainConfig, probe: EnvProbe, has_language_model: bool) -> None:
    """Refuse, in one line, an `instruction` that no memory of this agent can read: an agent without a language
    memory, or a key under which the environment gives no text (its probe's first reset)."""
    if not has_language_model:
        raise ShelmError(
            f"--set instruction={config.instruction}: agent '{config.agent}' has no language memory to read it into; "
            f"use an agent with one ({', '.join(language_model_agents())}) or instruction={NO_INSTRUCTION}"
        )
    if config.instruction not in probe.text_keys:
        texts = probe.text_keys
        found = f"its texts are under {', '.join(texts)}" if texts else "it gives no text"
        raise ShelmError(
            f"--set instruction={config.instruction}: env '{config.env_id}' gives no text under that key ({found}); "
            f"use one of those, or instruction={NO_INSTRUCTION}"
        )


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Categorical]:
    """One action per row of logits [N, A], drawn from `generator`, and the distribution it was drawn from.

    The draw is exactly `Categorical(logits=logits).sample()` with the generator in place of torch's global one.
    """
    dist = Categorical(logits=logits)
    probs = dist.probs.reshape(-1, dist.param_shape[-1])
    return torch.multinomial(probs, 1, True, generator=generator).T.reshape(logits.shape[:-1]), dist


def generator_continuing_global(device: torch.device) -> torch.Generator:
    """A generator that starts where torch's seeded global generator for `device` now stands.

    The trainer seeds torch, builds the networks, then acts: drawing actions from this generator gives the draws
    the global generator would have given, so runs keep the metrics they had before actions had their own
    generator, while nothing else (a library, an analysis) can shift the action stream.
    """
    generator = torch.Generator(device=device)
    source = torch.cuda.default_generators[device.index or 0] if device.type == "cuda" else torch.default_generator
    generator.set_state(source.get_state())
    return generator


@dataclass
class Decision:
    """What the actor chose for N envs, float32 and on the policy's device."""

    action: torch.Tensor
    """[N] int64"""
    logprob: torch.Tensor
    """[N] log-probability of the action under the policy"""
    value: torch.Tensor
    """[N] the critic's estimate for the observation acted on"""
    logits: torch.Tensor
    """[N, A]"""


@dataclass
class Actor:
    """A policy acting in N environments: it carries the memory's and the agent's state between steps.

    `start` begins every environment's first episode; `observe` takes each new observation (the memory reads it
    once); `decide` picks actions for the current observations; `value` is the critic's estimate of them without
    acting (the bootstrap at the end of a rollout).
    """

    policy: Policy
    n_envs: int
    generator: torch.Generator
    greedy: bool = False
    obs: torch.Tensor = field(init=False)
    infos: Mapping[str, Any] = field(init=False)
    episode_start: torch.Tensor = field(init=False)
    memory_out: torch.Tensor = field(init=False)
    state: torch.Tensor = field(init=False)

    def start(self, obs: Any, infos: Mapping[str, Any]) -> None:
        """Empty the memory and the recurrent state, and observe the first observations of N new episodes."""
        if self.policy.memory is not None:
            self.policy.memory.reset(self.n_envs)
        self.state = self.policy.agent.initial_state(self.n_envs).to(self.policy.device)
        self.observe(obs, infos, torch.ones(self.n_envs, dtype=torch.bool))

    def observe(self, obs: Any, infos: Mapping[str, Any], episode_start: Any) -> None:
        device = self.policy.device
        self.obs = torch.as_tensor(obs, device=device)
        self.infos = infos
        self.episode_start = torch.as_tensor(episode_start, device=device)
        with torch.no_grad():
            self.memory_out = self.policy.read_memory(self.obs, self.episode_start, infos)

    def decide(self) -> Decision:
        with torch.no_grad():
            logits, value, self.state = self.policy.act(self.obs, self.memory_out, self.state, self.episode_start)
            if self.greedy:
                action = logits.argmax(-1)
                logprob = Categorical(logits=logits).log_prob(action)
            else:
                action, dist = sample_actions(logits, self.generator)
                logprob = dist.log_prob(action)
        return Decision(action=action, logprob=logprob, value=value, logits=logits)

    def value(self) -> torch.Tensor:
        with torch.no_grad():
            _, value, _ = self.policy.act(self.obs, self.memory_out, self.state, self.episode_start)
        return value
