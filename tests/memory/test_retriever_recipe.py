"""docs/architecture.md's recipe "add a SHELM retriever", done from outside the package: one retriever class, one
builder, one `register_retriever` line; then `shelm train --agent shelm --set retriever=NAME` uses it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from shelm.cli import main
from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory.retrieval import phrase_tokens
from shelm.memory.retrievers import RETRIEVERS, register_retriever
from shelm.runs import read_metrics


class BrightnessRetriever:
    """Says 'dark' or 'bright' for a frame, by its mean pixel value."""

    name = "brightness"
    input_key = None  # it reads the image
    pad_item = None

    def __init__(self) -> None:
        self.vocabulary = ["dark", "bright"]

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        brightness = inputs.float().mean(dim=(1, 2, 3)) / 255.0
        return torch.stack([1.0 - brightness, brightness], dim=1)

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        return phrase_tokens(self.vocabulary, tokenizer)

    def identity(self) -> dict[str, Any]:
        return {"retriever": self.name, "vocabulary_size": len(self.vocabulary)}


def build_brightness_retriever(config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device):
    if config.topk > 2:
        raise ShelmError(f"topk={config.topk}: retriever=brightness knows 2 words; use topk=1 or 2")
    return BrightnessRetriever()


@pytest.fixture
def brightness_retriever():
    register_retriever("brightness", build_brightness_retriever, inputs="pixels")  # it reads the image
    yield
    RETRIEVERS.unregister("brightness")


def test_a_retriever_registered_from_outside_feeds_shelm(
    brightness_retriever, tmp_path, capsys, tiny_llama_with_tokenizer_dir
):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "shelm", "--steps", "64", "--n-envs", "2"]
    argv += ["--set", f"lm={tiny_llama_with_tokenizer_dir}", "--set", "mem_len=4", "--set", "n_steps=32"]
    argv += ["--set", "retriever=brightness", "--set", "cnn_features=32", "--set", "critic_hidden=32"]
    assert main([*argv, "--run-dir", str(run), "--quiet"]) == 0
    assert [r["global_step"] for r in read_metrics(run)] == [64]
    identity = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert identity["retriever"] == "brightness" and identity["vocabulary_size"] == 2

    capsys.readouterr()
    assert main(["inspect", str(run), "--episodes", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["words_by"] == "brightness"
    words = {word for step in summary["episodes"][0]["first_steps"] for word, _ in step["words"]}
    assert words and words <= {"dark", "bright"}

    bad = tmp_path / "bad"
    assert main([*argv[:-4], "--set", "retriever=brightness", "--set", "topk=3", "--run-dir", str(bad)]) == 2
    assert "retriever=brightness knows 2 words" in capsys.readouterr().err and not bad.exists()
