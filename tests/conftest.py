"""Shared fixtures: tiny but real runs trained through the same code path as `shelm train`, and tiny random
language models built here, saved, and loaded back through the path users take."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shelm.cli import main
from shelm.runs import read_metrics

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


def eval_actions(run_dir: Path, episodes: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """`shelm eval RUN_DIR --episodes N --json` with the actions it takes recorded: mode -> [T, n_envs] (eval plays
    each mode in its own vector env of min(N, 8) envs)."""
    from shelm import evaluate

    played: list[list[np.ndarray]] = []
    make_vec_env = evaluate.make_vec_env

    def recording(*args: Any, **kwargs: Any) -> Any:
        envs = make_vec_env(*args, **kwargs)
        actions: list[np.ndarray] = []
        step = envs.step

        def recorded(chosen: np.ndarray) -> Any:
            actions.append(np.array(chosen, copy=True))
            return step(chosen)

        envs.step = recorded
        played.append(actions)
        return envs

    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "make_vec_env", recording)
        assert main(["eval", str(run_dir), "--episodes", str(episodes), "--json"]) == 0
    greedy, sampled = played
    greedy, sampled = np.stack(greedy), np.stack(sampled)
    return {"greedy": greedy, "sampled": sampled}


def _save(model, path: Path) -> Path:
    model.save_pretrained(path)
    return path


def _tiny_llama(vocab_size: int, layers: int, seed: int):
    """A random Llama-type causal LM of width 32 with grouped-query attention (4 heads, 2 key/value heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(_tiny_llama(300, layers=3, seed=0), tmp_path_factory.mktemp("lm") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=300, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    return _save(GPT2LMHeadModel(config), tmp_path_factory.mktemp("lm") / "tiny-gpt2")


# Words the tiny tokenizers below know as whole tokens: the symbolic retriever's vocabulary and the prompts.
TINY_LM_WORDS = ["red", "green", "blue", "purple", "yellow", "grey", "key", "ball", "box", "door", "wall", "goal"]
TINY_LM_WORDS += ["lava", "nothing", "open", "locked", "render", "screenshot", "screen", "showing", "image", "a", "of"]
TINY_LM_WORDS += ["the"]
# The tiny CLIP's whole words: some shared with the tiny LM, some only CLIP's ("zebra", "kite").
TINY_CLIP_SHARED = ["ball", "door", "green", "key", "red"]
TINY_CLIP_ONLY = ["kite", "zebra"]


@pytest.fixture(scope="session")
def tiny_llama_with_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with its own small byte-level BPE tokenizer, saved together in one directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]
    )
    corpus = [" ".join(TINY_LM_WORDS)] * 50 + [f"a {w} {w}" for w in TINY_LM_WORDS] * 20
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    path = _save(_tiny_llama(len(tokenizer), layers=2, seed=2), tmp_path_factory.mktemp("lm") / "tiny-llama-tok")
    tokenizer.save_pretrained(path)
    return path


def _clip_vocabulary(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary of characters plus `words`, with merges that build each word left to right."""
    import string

    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for c in string.ascii_lowercase + string.digits + "{}.,":
            vocab.setdefault(c + suffix, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        prefix = word[0]
        for i, c in enumerate(word[1:], 1):
            right = c + "</w>" if i == len(word) - 1 else c
            if (prefix, right) not in merges:
                merges.append((prefix, right))
            prefix += right
            vocab.setdefault(prefix, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, merges


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPModel (32x32 images, 8-d embeddings) and a CLIPTokenizer whose whole words are
    TINY_CLIP_SHARED + TINY_CLIP_ONLY plus the words of the default prompt templates."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    words = [*TINY_CLIP_SHARED, *TINY_CLIP_ONLY, "render", "showing", "of"]
    vocab, merges = _clip_vocabulary(words)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    for word in words:
        assert tokenizer.tokenize(word) == [word + "</w>"], word
    special = {"eos_token_id": vocab["<|endoftext|>"], "bos_token_id": vocab["<|startoftext|>"]}
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "pad_token_id": vocab["<|endoftext|>"],
            **special,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=8,
    )
    torch.manual_seed(3)
    path = _save(CLIPModel(config), tmp_path_factory.mktemp("clip") / "tiny-clip")
    tokenizer.save_pretrained(path)
    return path


def start_cli(argv: list[str]) -> subprocess.Popen:
    """`shelm ARGV` in a child process (stdout dropped, stderr kept for the failure message)."""
    command = [sys.executable, "-m", "shelm.cli", *argv]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after_rows(proc: subprocess.Popen, run_dir: Path, rows: int, deadline_s: float = 120) -> None:
    """SIGKILL `proc` once the run's metrics.jsonl has `rows` rows (mid-run: checkpoints are written every
    iteration); fails if the child exits or makes no progress within `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while len(read_metrics(run_dir)) < rows:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "training did not progress"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def play_one_episode(agent: Any, seed: int) -> list[int]:
    """The actions a loaded agent (`shelm.load`) takes, step by step with `act`, in one env of its own reset with
    `seed`, to the end of the episode."""
    env = agent.make_env()
    obs, info = env.reset(seed=seed)
    agent.reset()
    chosen, done = [], False
    while not done:
        chosen.append(agent.act(obs, info))
        obs, _, terminated, truncated, info = env.step(chosen[-1])
        done = terminated or truncated
    return chosen
