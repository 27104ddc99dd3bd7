"""The HELM family's memory: a frozen mapping turns each observation into k LM input vectors, and a frozen language
model remembers them.

HELM, HELMv2 and SHELM differ only in that mapping (FrozenHopfield; affinely mapped image features; retrieved
words). `LanguageModelMemoryBase` is everything else, as the `FrozenMemory` the trainer sees: the LM step over
each environment's window, the memo cache of the mapping, the metrics, the identity a checkpoint records, and what
the analyses read (embeddings, attention). A memory of the family supplies its `lm_inputs`, its `last_words`, its
`own_identity` and, where it draws tensors at construction, `state_dict`/`load_state_dict`.
`frozen_language_model` builds the LM part from a run's settings, through the backend that serves its `lm`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch

from shelm.config import TrainConfig
from shelm.memory.caches import MemoCache, cached_language_model, cached_tokenizer
from shelm.memory.lm_backend import AttentionReplay, LanguageModelStep
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

    def identity(self, kind: str) -> dict[str, Any]:
        """The identity keys every language-model memory has: its kind and its frozen LM (source, weight hash,
        layers, dtype, window)."""
        return {
            "kind": kind,
            "lm": self.lm,
            "lm_sha256": self.loaded.sha256,
            "lm_layers": self.loaded.layers,
            "lm_dtype": self.dtype,
            "mem_len": self.mem_len,
        }


def frozen_language_model(config: TrainConfig, device: torch.device, inputs_per_step: int = 1) -> FrozenLanguageModel:
    """The run's frozen LM (loaded once per process) on `device`, fed `inputs_per_step` vectors per environment
    step, its window holding `mem_len` steps."""
    dtype = resolve_dtype(config.lm_dtype, device)
    loaded = cached_language_model(config.lm, dtype, config.lm_layers)
    compile = compile_requested(config.lm_compile, config.total_steps)
    step = loaded.memory(device, config.mem_len * inputs_per_step, inputs_per_step, compile=compile)
    return FrozenLanguageModel(loaded, step, config.lm, dtype, config.mem_len)


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
        self._lm_identity = frozen.identity(self.kind)

    # --- what a memory of the family supplies

    @abstractmethod
    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        """[N, k, d]: the LM input vectors for obs (see `FrozenMemory.lm_inputs`); keeps `last` for `last_words`."""

    @abstractmethod
    def last_words(self) -> list[list[tuple[str, float]]]:
        """Per environment, the last `lm_inputs` call as text with scores (see `FrozenMemory.last_words`)."""

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

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        return self.lm.step(self.lm_inputs(obs, info), episode_start)

    def metrics(self) -> dict[str, float]:
        return {**self.memo.metrics(), **self.lm.metrics()}

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

    def attention(self, inputs: torch.Tensor) -> AttentionReplay:
        """One episode's LM inputs [T, k, d], as `lm_inputs` gave them from its start, replayed through the LM:
        every layer's attention and the per-step outputs (see `LanguageModelStep.attention`)."""
        return self.lm.attention(inputs)

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
