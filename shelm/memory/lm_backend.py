"""What a language-model backend provides: how shelm loads a frozen LM and steps it as a per-environment memory.

A backend serves the `lm` sources it `handles` (e.g. `transfo-xl:DIR`, or any Hugging Face model) and knows how
to load such a model, its tokenizer, and how to cut it to its first `lm_layers` blocks. Its `memory` is a
`LanguageModelStep`: the frozen model with one sliding window of `mem_len` positions per environment, fed k input
vectors per environment step, after a prefix that each episode holds for its whole length (its instruction, where
the run reads one). The HELM-family memories (shelm.memory.base) and the analyses use only these two interfaces,
so they never ask which backend they run on. `shelm.memory.backends` lists the backends.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from shelm.errors import ShelmError


def check_window(mem_len: int, inputs_per_step: int) -> None:
    """The window settings every language-model memory backend accepts."""
    if mem_len < 1:
        raise ShelmError(f"mem_len={mem_len} must be >= 1 (the number of past positions the LM attends to)")
    if not 1 <= inputs_per_step <= mem_len:
        raise ShelmError(f"inputs per step ({inputs_per_step}) must be between 1 and mem_len ({mem_len})")


def check_prefix(prefix: Prefix, starting: int, prefix_len: int) -> None:
    """A step's prefix has one row per environment starting an episode and fits the positions kept for it."""
    if prefix.embeds.shape[0] != starting or prefix.lengths.shape != (starting,):
        raise ValueError(f"a prefix needs one row per starting environment ({starting}), got {prefix.embeds.shape[0]}")
    longest = int(prefix.lengths.max()) if starting else 0
    if prefix.embeds.shape[1] > prefix_len or longest > prefix.embeds.shape[1]:
        raise ValueError(f"a prefix of {prefix.embeds.shape[1]} positions exceeds the {prefix_len} kept for it")


def keep_first_blocks(blocks: nn.ModuleList, layers: int) -> int:
    """Cut `blocks` to its first `layers` (0 keeps all), refusing a number the model does not have. Returns the
    number kept (the `lm_layers` recorded with a run)."""
    total = len(blocks)
    if layers == 0:
        return total
    if not 1 <= layers <= total:
        raise ShelmError(f"lm_layers={layers}, but the language model has {total} layers; choose 1..{total} (0 = all)")
    del blocks[layers:]
    return layers


def replay_mask(steps: int, k: int, mem_len: int, prefix: int = 0) -> torch.Tensor:
    """bool [P+T*k, P+T*k] for an episode whose P prefix positions come first: the prefix sees itself causally and
    every later position sees all of it; step position q (of step q // k, counted after the prefix) sees the step
    positions j <= q that were in its window during the rollout, i.e. j >= (q // k) * k - mem_len. Replaying an
    episode at once under this mask gives every position exactly what it attended to step by step."""
    q = torch.arange(steps * k)[:, None]
    j = torch.arange(steps * k)[None, :]
    steps_mask = (j <= q) & (j >= (q // k) * k - mem_len)
    total = prefix + steps * k
    allowed = torch.zeros(total, total, dtype=torch.bool)
    allowed[:prefix, :prefix] = torch.ones(prefix, prefix, dtype=torch.bool).tril()
    allowed[prefix:, :prefix] = True
    allowed[prefix:, prefix:] = steps_mask
    return allowed


class Prefix(NamedTuple):
    """What the environments that start an episode at this step hold before their first observation (e.g. the
    episode's instruction): right-padded input vectors and how many of them are real, in environment order."""

    embeds: torch.Tensor
    """[n, P, d]: n = the number of environments starting an episode; rows past a length are padding."""
    lengths: torch.Tensor
    """long [n]: the real positions of each row, 0..P (0: no prefix)."""


class AttentionReplay(NamedTuple):
    """One episode's LM inputs replayed through the frozen LM in one pass (see `LanguageModelStep.attention`)."""

    attentions: list[torch.Tensor]
    """Per layer, [heads, T*k, T*k]: the attention weights of every position over the episode's positions."""
    outputs: torch.Tensor
    """[T, d]: the output of each step (its last position's hidden state), as the step-by-step memory gave it."""
    prefix: int = 0
    """How many leading positions of the attention maps are the episode's prefix (its instruction)."""


class LanguageModelStep(Protocol):
    """A frozen LM as a memory of N environments: per environment a sliding window of its last `mem_len`
    positions, k new positions per step. A new episode empties that environment's window exactly."""

    output_dim: int
    """Width d of the hidden state returned per environment."""
    mem_len: int
    """Positions each environment's window holds."""
    k: int
    """Input vectors (positions) per environment step."""
    prefix_len: int
    """Positions each environment keeps for its episode's prefix, before the window; 0: no prefix. A prefix never
    slides out: every step of the episode attends to it."""
    device: torch.device
    dtype: torch.dtype
    """The dtype the step computes in (the model's)."""

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """E [V, d]: the vector the model is fed for each vocabulary entry (frozen)."""
        ...

    def window_bytes(self, n_envs: int) -> int:
        """Bytes the windows of `n_envs` environments take (the memory pre-flight asks before `reset`)."""
        ...

    def reset(self, n_envs: int) -> None:
        """Empty every window and prepare for `n_envs` environments."""
        ...

    def step(
        self, inputs_embeds: torch.Tensor, episode_start: torch.Tensor, prefix: Prefix | None = None
    ) -> torch.Tensor:
        """inputs_embeds [N, k, d]; episode_start bool [N] empties those windows first, then `prefix` (one row per
        starting environment, at most `prefix_len` positions) is written at the front of each, its positions
        coming first in the episode. Returns the last position's hidden state [N, d] (float32)."""
        ...

    def metrics(self) -> dict[str, float]:
        """Counters since the last call (e.g. seconds spent compiling the step)."""
        ...

    def attention(self, inputs: torch.Tensor, prefix: torch.Tensor | None = None) -> AttentionReplay:
        """inputs [T, k, d] of one episode (as fed, from its start), after its prefix [P, d] if it had one,
        replayed at once with the window the step had (`replay_mask`): the attention of every layer and the
        per-step outputs, which match the step's."""
        ...


class LanguageModelBackend(Protocol):
    """One kind of language model: which `lm` sources it serves, and how to load, cut and step them."""

    name: str
    """Shown in messages, e.g. 'Hugging Face' or 'TransformerXL'."""

    def handles(self, lm: str) -> bool:
        """Whether this backend serves the `lm` setting (asked newest registered first; the first that says yes
        wins)."""
        ...

    def resolve(self, lm: str) -> str:
        """Where `lm` is read from (a directory or a hub id), checked: a bad source is refused with its fix."""
        ...

    def load(self, source: str, dtype: torch.dtype) -> nn.Module:
        """The model at `source` (what `resolve` returned) in `dtype`, all layers."""
        ...

    def truncate(self, model: nn.Module, layers: int) -> int:
        """Keep the model's first `layers` transformer blocks (0 keeps all; see `keep_first_blocks`); returns the
        number kept."""
        ...

    def tokenizer(self, lm: str) -> Any:
        """The model's tokenizer: `__call__(text, add_special_tokens=False)["input_ids"]`, `decode(ids)` and
        `get_vocab()`, as Hugging Face tokenizers have them."""
        ...

    def memory(
        self, model: nn.Module, mem_len: int, inputs_per_step: int, compile: bool, prefix_len: int = 0
    ) -> LanguageModelStep:
        """The per-environment sliding memory over `model` (already on its device), with `prefix_len` positions per
        environment for a prefix; `compile` asks for a faster, compiled step where the backend has one (it says so
        where it has none)."""
        ...
