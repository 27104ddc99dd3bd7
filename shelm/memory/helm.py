"""HELM's memory: FrozenHopfield maps each observation to one LM input vector; the frozen LM remembers."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from shelm.config import TrainConfig
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.memory.retrieval import MemoCache
from shelm.memory.weights import LoadedLanguageModel, load_language_model, load_tokenizer
from shelm.precision import DTYPES, resolve_dtype

if TYPE_CHECKING:
    from shelm.memory.weights import LMMemory


@functools.lru_cache(maxsize=2)
def cached_language_model(lm: str, dtype: str, layers: int) -> LoadedLanguageModel:
    """One load per process: training and the evaluation after it share the frozen weights."""
    return load_language_model(lm, dtype, layers)


# The compiled LM step costs seconds per block to build once; below this many training steps it does not pay.
COMPILE_AUTO_MIN_STEPS = 100_000


def compile_requested(lm_compile: str, total_steps: int) -> bool:
    """Whether the setting `lm_compile` asks for the compiled LM step in a run of `total_steps`."""
    return lm_compile == "true" or (lm_compile == "auto" and total_steps >= COMPILE_AUTO_MIN_STEPS)


def frozen_language_model(
    config: TrainConfig, device: torch.device, mem_len: int, inputs_per_step: int = 1
) -> tuple[LoadedLanguageModel, LMMemory, str]:
    """The run's frozen LM (loaded once per process) as a per-environment memory on `device`, and the dtype it
    computes in (`lm_dtype`, with 'auto' resolved for the device)."""
    dtype = resolve_dtype(config.lm_dtype, device)
    loaded = cached_language_model(config.lm, dtype, config.lm_layers)
    compile = compile_requested(config.lm_compile, config.total_steps)
    return loaded, loaded.memory(device, mem_len, inputs_per_step, compile=compile), dtype


@functools.lru_cache(maxsize=2)
def _tokenizer(lm: str) -> Any:
    return load_tokenizer(lm)


def nearest_tokens(vectors: torch.Tensor, embeddings: torch.Tensor, lm: str) -> list[list[tuple[str, float]]]:
    """Per input vector [N, d], the vocabulary token with the most similar embedding (cosine) and that cosine.
    For reading HELM and HELMv2 memories; the training loop never calls it."""
    cosine = (
        torch.nn.functional.normalize(vectors.float(), dim=-1)
        @ torch.nn.functional.normalize(embeddings.float(), dim=-1).T
    )
    best, ids = cosine.max(-1)
    return token_texts(ids, best, lm)


def token_texts(ids: torch.Tensor, scores: torch.Tensor, lm: str) -> list[list[tuple[str, float]]]:
    """[N] token ids and scores -> per row [(decoded token, score)]; a whitespace token is shown quoted."""
    tokenizer = _tokenizer(lm)
    out = []
    for i, score in zip(ids.tolist(), scores.tolist(), strict=True):
        text = tokenizer.decode([i])
        out.append([(text.strip() or repr(text), score)])
    return out


class HELMMemory:
    def __init__(self, lm: LMMemory, hopfield: FrozenHopfield, memo_size: int, identity: dict[str, Any]):
        self.lm, self.hopfield = lm, hopfield
        # FrozenHopfield is a fixed function of the frame, and its [N, V] similarity product costs several times
        # the LM step: repeated frames reuse their input vector.
        self.memo = MemoCache(memo_size)
        self.output_dim = lm.output_dim
        self.window_steps = lm.mem_len
        self._identity = identity
        self._last: torch.Tensor | None = None

    def reset(self, n_envs: int) -> None:
        self.lm.reset(n_envs)
        self._last = None

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        return self.lm.step(self.lm_inputs(obs, info), episode_start)

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        self._last = obs
        return self.memo(obs, lambda x: (self.hopfield(x),))[0].unsqueeze(1)

    def last_words(self) -> list[list[tuple[str, float]]]:
        """The token FrozenHopfield weights most for each environment's last observation, with that weight."""
        if self._last is None:
            return []
        weights = torch.softmax(self.hopfield.beta * self.hopfield.similarities(self._last), dim=-1)
        best, ids = weights.max(-1)
        return token_texts(ids, best, self._identity["lm"])

    def metrics(self) -> dict[str, float]:
        return {**self.memo.metrics(), **self.lm.metrics()}

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.hopfield.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.hopfield.load_state_dict(state)


def build_helm_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> HELMMemory:
    loaded, lm, dtype = frozen_language_model(config, device, config.mem_len)
    hopfield = FrozenHopfield(lm.embedding_matrix, math.prod(obs_shape), config.beta, config.seed, DTYPES[dtype])
    identity = {
        "kind": "helm",
        "lm": config.lm,
        "lm_sha256": loaded.sha256,
        "lm_layers": loaded.layers,
        "lm_dtype": dtype,
        "mem_len": config.mem_len,
        "beta": config.beta,
    }
    return HELMMemory(lm, hopfield, config.memo_size, identity)
