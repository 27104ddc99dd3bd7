"""Loading the frozen language model named by the `lm` setting, through the backend that serves it.

`lm` names a model in one of the forms the registered backends accept (shelm.memory.backends): `smollm2` (the
default, packaged), a local Hugging Face model directory, a hub id already in the local Hugging Face cache, or
`transfo-xl:DIR` (the papers' TransformerXL). Loading freezes the model, keeps its first `lm_layers` blocks and
hashes the weights actually used (SHA-256), which runs record and checkpoints verify.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from shelm.errors import ShelmError
from shelm.memory.backends import backend_for
from shelm.memory.lm_backend import LanguageModelBackend, LanguageModelStep
from shelm.precision import DTYPES


@dataclass
class LoadedLanguageModel:
    model: nn.Module
    """The backend's model (e.g. a Hugging Face `PreTrainedModel`), frozen, truncated to `layers` blocks."""
    source: str
    """Where it was read from: the directory, or the hub id."""
    sha256: str
    """Of the weights as loaded (after truncation and dtype conversion)."""
    layers: int
    backend: LanguageModelBackend
    """The backend that loaded it, which also steps it."""

    def memory(
        self, device: torch.device, mem_len: int, inputs_per_step: int = 1, compile: bool = False, prefix_len: int = 0
    ) -> LanguageModelStep:
        """The per-environment sliding memory over this model, moved to `device`, with `prefix_len` positions per
        environment for an episode's prefix; `compile` asks for the prepared, compiled step where the backend has
        one."""
        return self.backend.memory(self.model.to(device), mem_len, inputs_per_step, compile, prefix_len)


def weights_sha256(model: nn.Module) -> str:
    """A hash of every parameter and buffer (names, dtypes, shapes and bytes), whatever file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())  # reshape: 0-dim too
    return digest.hexdigest()


def load_language_model(lm: str, dtype: str = "float32", layers: int = 0) -> LoadedLanguageModel:
    """Load, freeze and truncate (to `layers` blocks, 0 = all) the LM named by `lm`, in `dtype`."""
    if dtype not in DTYPES:
        raise ShelmError(f"lm_dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    backend = backend_for(lm)
    source = backend.resolve(lm)
    model = backend.load(source, DTYPES[dtype])
    kept = backend.truncate(model, layers)
    model.eval().requires_grad_(False)
    return LoadedLanguageModel(model=model, source=source, sha256=weights_sha256(model), layers=kept, backend=backend)


def load_tokenizer(lm: str) -> Any:
    """The LM's own tokenizer (SHELM maps words to its tokens; inspection decodes tokens to text)."""
    return backend_for(lm).tokenizer(lm)
