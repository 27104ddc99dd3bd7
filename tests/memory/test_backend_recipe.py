"""The recipe for a language-model backend: a module implementing `LanguageModelBackend` (here, this test) and one
`register_backend` line make `lm=toy:...` a frozen memory HELM trains with, analyses included.

The toy "language model" attends uniformly to its window: its output for a position is a fixed map of the mean of
the input vectors it sees (the episode's prefix, the window's valid positions and its own step's up to itself).
Simple enough to check by hand, yet it exercises every part of the interface.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from shelm.agents import resolve_config
from shelm.cli import main
from shelm.memory.backends import backend_for, register_backend, unregister_backend
from shelm.memory.helm import build_helm_memory
from shelm.memory.lm_backend import AttentionReplay, Prefix, check_prefix, check_window, keep_first_blocks, replay_mask
from shelm.probe import EnvProbe

CPU = torch.device("cpu")
# A memory reads what it needs of the environment from its probe: here, 8x8 RGB frames.
SMALL_FRAMES = EnvProbe(
    "toy-frames",
    gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
    gym.spaces.Discrete(3),
    {},
    np.zeros((1, 8, 8, 3), np.uint8),
)
PREFIX = "toy:"
VOCABULARY = 40


class ToyLM(nn.Module):
    """Token embeddings [V, d] and a stack of blocks h -> tanh(h W); weights drawn from a fixed seed."""

    def __init__(self, width: int, layers: int = 3):
        super().__init__()
        generator = torch.Generator().manual_seed(width)
        self.embeddings = nn.Parameter(torch.randn(VOCABULARY, width, generator=generator))
        self.blocks = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers))
        for block in self.blocks:
            block.weight.data = torch.randn(width, width, generator=generator) / width**0.5

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = torch.tanh(block(h))
        return h


class ToyStep:
    """The toy LM over `prefix_len` prefix slots and one sliding window of `mem_len` positions per environment (a
    `LanguageModelStep`)."""

    def __init__(self, model: ToyLM, mem_len: int, inputs_per_step: int, prefix_len: int):
        check_window(mem_len, inputs_per_step)
        self.model, self.mem_len, self.k, self.prefix_len = model, mem_len, inputs_per_step, prefix_len
        self.output_dim = model.embeddings.shape[1]
        self.device, self.dtype = model.embeddings.device, model.embeddings.dtype
        self.steps = 0

    @property
    def embedding_matrix(self) -> torch.Tensor:
        return self.model.embeddings

    def window_bytes(self, n_envs: int) -> int:
        return n_envs * (self.prefix_len + self.mem_len) * (self.output_dim * self.dtype.itemsize + 1)

    def reset(self, n_envs: int) -> None:
        slots = self.prefix_len + self.mem_len
        self.window = torch.zeros(n_envs, slots, self.output_dim, dtype=self.dtype)
        self.valid = torch.zeros(n_envs, slots, dtype=torch.bool)
        self.head = 0

    @torch.no_grad()
    def step(
        self, inputs_embeds: torch.Tensor, episode_start: torch.Tensor, prefix: Prefix | None = None
    ) -> torch.Tensor:
        self.valid[episode_start] = False
        if prefix is not None:
            starting = episode_start.nonzero().squeeze(1)
            check_prefix(prefix, len(starting), self.prefix_len)
            width = prefix.embeds.shape[1]
            self.window[starting, :width] = prefix.embeds.to(self.dtype)
            self.valid[starting, :width] = torch.arange(width) < prefix.lengths[:, None]
        seen = torch.cat([self.window, inputs_embeds], 1)
        weights = torch.cat([self.valid, torch.ones(len(self.valid), self.k, dtype=torch.bool)], 1).to(self.dtype)
        mean = (seen * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        slots = self.prefix_len + (self.head + torch.arange(self.k)) % self.mem_len
        self.window[:, slots], self.valid[:, slots] = inputs_embeds, True
        self.head = (self.head + self.k) % self.mem_len
        self.steps += 1
        return self.model(mean).float()

    def metrics(self) -> dict[str, float]:
        return {"toy_steps": float(self.steps)}

    @torch.no_grad()
    def attention(self, inputs: torch.Tensor, prefix: torch.Tensor | None = None) -> AttentionReplay:
        steps, k, width = inputs.shape
        prefix = inputs.new_zeros(0, width) if prefix is None else prefix
        allowed = replay_mask(steps, k, self.mem_len, len(prefix)).to(self.dtype)
        weights = allowed / allowed.sum(-1, keepdim=True)  # uniform over what each position sees
        means = weights @ torch.cat([prefix, inputs.reshape(steps * k, width)]).to(self.dtype)
        outputs = self.model(means[len(prefix) + k - 1 :: k]).float()
        return AttentionReplay([weights[None]] * len(self.model.blocks), outputs, len(prefix))


class ToyTokenizer:
    """Token i is the word 'w<i>'; any other word is token 0."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [int(word[1:]) if word[1:].isdigit() else 0 for word in text.split()]}

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)


class ToyBackend:
    """`lm=toy:WIDTH`: a ToyLM of that width."""

    name = "toy"

    def handles(self, lm: str) -> bool:
        return lm.startswith(PREFIX)

    def resolve(self, lm: str) -> str:
        return lm

    def load(self, source: str, dtype: torch.dtype) -> nn.Module:
        return ToyLM(int(source.removeprefix(PREFIX))).to(dtype)

    def truncate(self, model: nn.Module, layers: int) -> int:
        assert isinstance(model, ToyLM)
        return keep_first_blocks(model.blocks, layers)

    def tokenizer(self, lm: str) -> ToyTokenizer:
        return ToyTokenizer()

    def memory(self, model: nn.Module, mem_len: int, inputs_per_step: int, compile: bool, prefix_len: int) -> ToyStep:
        assert isinstance(model, ToyLM)
        return ToyStep(model, mem_len, inputs_per_step, prefix_len)


@pytest.fixture
def toy_backend() -> Iterator[ToyBackend]:
    backend = ToyBackend()
    register_backend(backend)  # the one line that makes lm=toy:... available
    yield backend
    unregister_backend(backend)


def test_the_backend_serves_its_prefix_and_only_it(toy_backend: ToyBackend, tiny_llama_dir: Path) -> None:
    assert backend_for("toy:16") is toy_backend
    assert backend_for(str(tiny_llama_dir)) is not toy_backend


def test_a_helm_memory_steps_and_replays_through_the_backend(toy_backend: ToyBackend) -> None:
    config, _ = resolve_config(
        "MiniGrid-MemoryS7-v0", "helm", {"lm": "toy:16", "mem_len": 3, "lm_layers": 2, "lm_dtype": "float32"}
    )
    memory = build_helm_memory(config, SMALL_FRAMES, CPU)
    assert isinstance(memory.lm, ToyStep) and len(memory.lm.model.blocks) == 2
    assert memory.identity()["lm"] == "toy:16" and memory.identity()["lm_layers"] == 2
    assert memory.output_dim == 16 and memory.window_steps == 3

    frames = torch.randint(0, 256, (7, 2, 8, 8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    memory.reset(2)
    outputs = [memory.step(frame, torch.full((2,), t == 0)) for t, frame in enumerate(frames)]
    assert memory.metrics()["toy_steps"] == 7.0
    ((word, weight),) = memory.last_words()[0]
    assert word.startswith("w") and 0 < weight <= 1

    # The analyses' replay of environment 0's episode gives the outputs of the step.
    inputs = torch.stack([memory.lm_inputs(frame)[0] for frame in frames])
    attentions, replayed, _ = memory.attention(inputs)
    torch.testing.assert_close(replayed, torch.stack([out[0] for out in outputs]))
    assert len(attentions) == 2 and attentions[0].shape == (1, 7, 7)


def test_the_episodes_instruction_reaches_the_backend_and_its_replay(toy_backend: ToyBackend) -> None:
    settings = {"lm": "toy:16", "mem_len": 2, "lm_dtype": "float32", "instruction": "mission", "instruction_tokens": 3}
    config, _ = resolve_config("MiniGrid-MemoryS7-v0", "helm", settings)
    memory = build_helm_memory(config, SMALL_FRAMES, CPU)
    assert memory.lm.prefix_len == 3 and memory.identity()["instruction"] == "mission"
    frames = torch.randint(0, 256, (6, 2, 8, 8, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    missions = {"mission": ["w3 w5 w7 w9", "w1"]}  # env 0's is cut to its first 3 tokens
    memory.reset(2)
    outputs = [memory.step(frame, torch.full((2,), t == 0), missions) for t, frame in enumerate(frames)]
    assert memory.instructions == ["w3 w5 w7 w9", "w1"] and memory.metrics()["instructions_cut"] == 1
    inputs = torch.stack([memory.lm_inputs(frame)[1] for frame in frames])
    replay = memory.attention(inputs, "w1")
    assert replay.prefix == 1
    torch.testing.assert_close(replay.outputs, torch.stack([out[1] for out in outputs]))
    # Six steps on, a window of two no longer holds the first steps, yet env 1's output still depends on "w1".
    assert not torch.allclose(replay.outputs[-1], memory.attention(inputs).outputs[-1])


def test_helm_trains_with_lm_toy(toy_backend: ToyBackend, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "helm", "--steps", "64", "--n-envs", "2"]
    settings = ["lm=toy:16", "lm_layers=1", "mem_len=4", "n_steps=32", "cnn_features=32", "critic_hidden=32"]
    assert main([*argv, "--run-dir", str(run_dir), "--quiet", *[a for s in settings for a in ("--set", s)]]) == 0
    memory = json.loads((run_dir / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert memory["kind"] == "helm" and memory["lm"] == "toy:16" and memory["lm_layers"] == 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["global_step"] for row in rows] == [64] and rows[0]["toy_steps"] > 0
