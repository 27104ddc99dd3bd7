"""Shared fixtures: tiny but real runs trained through the same code path as `shelm train`, and tiny random
language models built here, saved, and loaded back through the path users take."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shelm.cli import main

# Small networks and rollouts keep each run to a few seconds on 2 cores.
TINY = ["--set", "cnn_features=64", "--set", "critic_hidden=64", "--set", "lstm_hidden=32", "--set", "n_steps=32"]


def train_run(run_dir: Path, env: str, agent: str, steps: int, *extra: str, seed: int = 1) -> Path:
    argv = ["train", "--env", env, "--agent", agent, "--steps", str(steps), "--n-envs", "4", "--seed", str(seed)]
    assert main([*argv, "--run-dir", str(run_dir), "--quiet", *TINY, *extra]) == 0
    return run_dir


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("runs") / "cnn", "MiniGrid-Empty-5x5-v0", "cnn", 256)


@pytest.fixture(scope="session")
def lstm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("runs") / "lstm", "MiniGrid-MemoryS7-v0", "lstm", 256)


def _save(model, path: Path) -> Path:
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return _save(LlamaForCausalLM(config), tmp_path_factory.mktemp("lm") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=300, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    return _save(GPT2LMHeadModel(config), tmp_path_factory.mktemp("lm") / "tiny-gpt2")
