"""The HELM family's memory: a frozen mapping turns each observation into k LM input vectors, and a frozen language
model remembers them.

HELM, HELMv2 and SHELM differ only in that mapping (FrozenHopfield; affinely mapped image features; retrieved words).
`LanguageModelMemoryBase` is everything else, as the `FrozenMemory` the trainer sees: the LM step over each
environment's window, the memo cache of the mapping, the metrics, the identity a checkpoint records, and what the
analyses read (embeddings, attention: the `LanguageModelMemory` capability). A memory of the family supplies its
`lm_inputs`, its `last_words`, its `own_identity` and, where it draws tensors at construction,
`state_dict`/`load_state_dict`. `frozen_language_model` builds the LM part from a run's settings, through the backend
that serves its `lm`.

The instruction: with the `instruction` setting, the text the environment gives under that key at an episode's
start (BabyAI's mission, "go to the red ball") is tokenized with the LM's own tokenizer and its token embeddings
fill the first positions of that episode's window (the backend's prefix), before the first observation. It never
slides out, so every step's LM output can draw on it; the LM stays frozen, and no agent is told the text otherwise.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import torch

from shelm.config import NO_INSTRUCTION, TrainConfig
from shelm.errors import ShelmError
from shelm.memory import ReadableMemory
from shelm.memory.caches import MemoCache, cached_language_model, cached_tokenizer
from shelm.memory.lm_backend import AttentionReplay, LanguageModelStep, Prefix
from shelm.memory.retrieval import FrameRegion
from shelm.memory.weights import LoadedLanguageModel
from shelm.precision import resolve_dtype

# The compiled LM step costs seconds per block to build once; below this many training steps it does not pay.
COMPILE_AUTO_MIN_STEPS = 100_000


def compile_requested(lm_compile: str, total_steps: int) -> bool:
    """Whether the setting `lm_compile` asks for the compiled LM step in a run of `total_steps`."""
    return lm_compile == "true" or (lm_compile == "auto" and total_steps >= COMPILE_AUTO_MIN_STEPS)


@dataclass(frozen=True)
class FrozenLanguageModel:
    """A run's frozen LM as a per-environment memory, with the settings that identify it."""

    loaded: LoadedLanguageModel
    step: LanguageModelStep
    """The per-environment sliding memory over `loaded.model`."""
    lm: str
    """The `lm` setting."""
    dtype: str
    """The dtype it computes in (`lm_dtype`, 'auto' resolved for the device)."""
    mem_len: int
    """The `mem_len` setting: the window in environment steps."""
    instruction: str = NO_INSTRUCTION
    """The `instruction` setting: the info key of the episode's instruction, or 'none'."""

    def identity(self, kind: str) -> dict[str, Any]:
        """The identity keys every language-model memory has: its kind and its frozen LM (source, weight hash,
        layers, dtype, window), and the instruction it reads where it reads one."""
        identity = {
            "kind": kind,
            "lm": self.lm,
            "lm_sha256": self.loaded.sha256,
            "lm_layers": self.loaded.layers,
            "lm_dtype": self.dtype,
            "mem_len": self.mem_len,
        }
        if self.instruction != NO_INSTRUCTION:
            identity |= {"instruction": self.instruction, "instruction_tokens": self.step.prefix_len}
        return identity


def frozen_language_model(config: TrainConfig, device: torch.device, inputs_per_step: int = 1) -> FrozenLanguageModel:
    """The run's frozen LM (loaded once per process) on `device`, fed `inputs_per_step` vectors per environment
    step, its window holding `mem_len` steps after `instruction_tokens` positions for the instruction where the run
    reads one (the agent's `build_policy` has checked that the environment gives that text)."""
    reads_instruction = config.instruction != NO_INSTRUCTION
    dtype = resolve_dtype(config.lm_dtype, device)
    loaded = cached_language_model(config.lm, dtype, config.lm_layers)
    compile = compile_requested(config.lm_compile, config.total_steps)
    prefix_len = config.instruction_tokens if reads_instruction else 0
    step = loaded.memory(device, config.mem_len * inputs_per_step, inputs_per_step, compile, prefix_len)
    return FrozenLanguageModel(loaded, step, config.lm, dtype, config.mem_len, config.instruction)


@runtime_checkable
class LanguageModelMemory(ReadableMemory, Protocol):
    """What a language-model memory offers besides stepping: the LM inputs it makes of observations, its window, and
    its attention replayed. `shelm inspect` and the analyses read it, for agents whose spec says
    `has_language_model`; `LanguageModelMemoryBase` implements it."""

    last_inputs: torch.Tensor | None
    """[N, k, d]: the LM inputs the last `step` fed."""
    instructions: list[str | None]
    """Per environment, the instruction its current episode holds (None without one)."""

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        """[N, k, d]: the k LM input vectors `step` feeds for obs (what the frozen mapping makes of it), which the
        analyses compare across observations and replay through the LM; `last_words` then describes this call."""
        ...

    def last_word_regions(self, obs: torch.Tensor) -> list[list[FrameRegion | None]] | None:
        """Per environment, the region of `obs` each word of `last_words` came from, where the memory can say."""
        ...

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """E [V, d]: the LM's input vector for each vocabulary entry (frozen)."""
        ...

    @property
    def positions_per_step(self) -> int:
        """k: the LM positions each environment step adds to the window."""
        ...

    def attention(self, inputs: torch.Tensor, instruction: str | None = None) -> AttentionReplay:
        """One episode's LM inputs [T, k, d] replayed through the LM: every layer's attention and the outputs."""
        ...


LastT = TypeVar("LastT")


class LanguageModelMemoryBase(ABC, Generic[LastT]):
    """A frozen mapping of observations to LM inputs, remembered by a frozen LM (see the module docstring).

    `LastT` is what the last `lm_inputs` call kept in `last` for `last_words` (an observation, input vectors,
    retrieved ids and scores).
    """

    kind: ClassVar[str]
    """The identity's 'kind', e.g. 'helm'."""

    def __init__(self, frozen: FrozenLanguageModel, memo_size: int):
        self.lm = frozen.step
        self.lm_name, self.lm_dtype = frozen.lm, frozen.dtype
        # The mapping is a fixed function of its input and often costs more than the LM step: repeated inputs
        # (frequent in grid worlds) reuse its result.
        self.memo = MemoCache(memo_size)
        self.output_dim = self.lm.output_dim
        self.window_steps = self.lm.mem_len // self.lm.k
        self.last: LastT | None = None
        self.last_inputs: torch.Tensor | None = None
        """[N, k, d]: the LM inputs the last `step` fed, as `lm_inputs` gave them (for reading the memory: a mapping
        with state, such as a retriever that counts how rare words are, must not be asked twice per frame)."""
        self._lm_identity = frozen.identity(self.kind)
        self.instruction_key = None if frozen.instruction == NO_INSTRUCTION else frozen.instruction
        self.instructions: list[str | None] = []
        """Per environment, the instruction its current episode holds (None without one)."""
        # Tokenizing is cached per text: an env's instructions repeat (BabyAI has a few hundred missions per level).
        self._tokens = functools.lru_cache(maxsize=4096)(self._tokenize)
        self._instructions_cut = 0

    # --- what a memory of the family supplies

    @abstractmethod
    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        """[N, k, d]: the LM input vectors for obs (see `FrozenMemory.lm_inputs`); keeps `last` for `last_words`."""

    @abstractmethod
    def last_words(self) -> list[list[tuple[str, float]]]:
        """Per environment, the last `lm_inputs` call as text with scores (see `FrozenMemory.last_words`)."""

    def last_word_regions(self, obs: torch.Tensor) -> list[list[FrameRegion | None]] | None:
        """Per environment, the region of its observation `obs` each word of `last_words` came from, where the
        memory can say (SHELM with a retriever that locates its words); None by default: it cannot."""
        return None

    @abstractmethod
    def own_identity(self) -> dict[str, Any]:
        """The settings of the mapping a checkpoint must match, beyond the LM's (e.g. FrozenHopfield's beta)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors drawn at construction; none by default (the mapping is rebuilt identically from the config)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"unexpected tensors {sorted(state)}")

    # --- the FrozenMemory bookkeeping

    def state_bytes(self, n_envs: int) -> int:
        return self.lm.window_bytes(n_envs)

    def reset(self, n_envs: int) -> None:
        self.lm.reset(n_envs)
        self.last = None
        self.last_inputs = None
        self.instructions = [None] * n_envs

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        prefix = None if self.instruction_key is None else self._instruction_prefix(episode_start, info)
        self.last_inputs = self.lm_inputs(obs, info)
        return self.lm.step(self.last_inputs, episode_start, prefix)

    def metrics(self) -> dict[str, float]:
        cut, self._instructions_cut = self._instructions_cut, 0
        return {**self.memo.metrics(), **self.lm.metrics(), **({"instructions_cut": cut} if cut else {})}

    # --- the instruction

    def _tokenize(self, text: str) -> tuple[int, ...]:
        return tuple(cached_tokenizer(self.lm_name)(text, add_special_tokens=False)["input_ids"])

    def instruction_ids(self, text: str) -> tuple[int, ...]:
        """The LM's tokens of an instruction, cut to the positions kept for it (a cut is counted in the metrics)."""
        ids = self._tokens(text)
        if len(ids) > self.lm.prefix_len:
            self._instructions_cut += 1
        return ids[: self.lm.prefix_len]

    def instruction_inputs(self, text: str) -> torch.Tensor:
        """[P, d]: the LM input vectors an episode with this instruction holds before its first observation."""
        matrix = self.embedding_matrix
        return matrix[torch.tensor(self.instruction_ids(text), dtype=torch.long, device=matrix.device)]

    def _instruction_prefix(self, episode_start: torch.Tensor, info: Mapping[str, Any] | None) -> Prefix:
        """The prefix of the environments starting an episode: their instruction's token embeddings."""
        starting = episode_start.nonzero().squeeze(1).tolist()
        texts = None if info is None else info.get(self.instruction_key)
        if starting and texts is None:
            raise ShelmError(
                f"instruction={self.instruction_key}: the environment gave no info['{self.instruction_key}']"
            )
        embeds = torch.zeros(
            len(starting), self.lm.prefix_len, self.output_dim, dtype=self.lm.dtype, device=self.lm.device
        )
        lengths = torch.zeros(len(starting), dtype=torch.long)
        for row, env in enumerate(starting):
            text = str(texts[env])
            vectors = self.instruction_inputs(text)
            embeds[row, : len(vectors)] = vectors.to(embeds.dtype)
            lengths[row] = len(vectors)
            self.instructions[env] = text
        return Prefix(embeds, lengths)

    def identity(self) -> dict[str, Any]:
        return {**self._lm_identity, **self.own_identity()}

    # --- what the analyses and `last_words` read

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """E [V, d]: the LM's input vector for each vocabulary entry (frozen)."""
        return self.lm.embedding_matrix

    @property
    def positions_per_step(self) -> int:
        """k: the LM positions each environment step adds to the window."""
        return self.lm.k

    @property
    def window_positions(self) -> int:
        """The LM positions each environment's window holds (`window_steps` * k)."""
        return self.lm.mem_len

    def attention(self, inputs: torch.Tensor, instruction: str | None = None) -> AttentionReplay:
        """One episode's LM inputs [T, k, d], as `lm_inputs` gave them from its start, after its instruction where it
        had one, replayed through the LM: every layer's attention and the per-step outputs (see
        `LanguageModelStep.attention`)."""
        prefix = None if instruction is None else self.instruction_inputs(instruction)
        return self.lm.attention(inputs, prefix)

    def token_words(self, ids: torch.Tensor, scores: torch.Tensor) -> list[list[tuple[str, float]]]:
        """[N] token ids and scores -> per row [(decoded token, score)]; a whitespace token is shown quoted."""
        tokenizer = cached_tokenizer(self.lm_name)
        out = []
        for i, score in zip(ids.tolist(), scores.tolist(), strict=True):
            text = tokenizer.decode([i])
            out.append([(text.strip() or repr(text), score)])
        return out

    def nearest_token_words(self, vectors: torch.Tensor) -> list[list[tuple[str, float]]]:
        """Per input vector [N, d], the vocabulary token with the most similar embedding (cosine) and that cosine.
        For reading the memory; the training loop never calls it."""
        cosine = (
            torch.nn.functional.normalize(vectors.float(), dim=-1)
            @ torch.nn.functional.normalize(self.embedding_matrix.float(), dim=-1).T
        )
        best, ids = cosine.max(-1)
        return self.token_words(ids, best)
