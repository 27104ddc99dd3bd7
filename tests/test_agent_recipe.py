"""docs/architecture.md's recipe "add a frozen-memory agent", done from outside the package: one memory class on
the HELM family's base, one builder, one registration line; then `shelm train`, `shelm eval` and `shelm inspect`
run it like any built-in agent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import torch

from shelm.agents import AgentSpec, get_agent_spec, register_agent, unregister_agent
from shelm.agents.cnn import CNNAgent
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.memory.base import FrozenLanguageModel, LanguageModelMemoryBase, frozen_language_model
from shelm.probe import EnvProbe
from shelm.runs import read_metrics


class BrightnessMemory(LanguageModelMemoryBase[torch.Tensor]):
    """A toy mapping: each frame becomes the embedding of the token whose id is its mean brightness (mod V)."""

    kind = "brightness"

    def __init__(self, frozen: FrozenLanguageModel, memo_size: int):
        super().__init__(frozen, memo_size)
        self.vocabulary = frozen.step.embedding_matrix.shape[0]

    def token_ids(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float().mean(dim=(1, 2, 3)).long() % self.vocabulary

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        self.last = self.memo(obs, lambda frames: (self.token_ids(frames),))[0]  # the base's memo cache
        return self.embedding_matrix[self.last].unsqueeze(1)

    def last_words(self) -> list[list[tuple[str, float]]]:
        return [] if self.last is None else self.token_words(self.last, torch.ones(len(self.last)))

    def own_identity(self) -> dict[str, Any]:
        return {"mapping": "mean brightness"}


def build_brightness_memory(config: TrainConfig, probe: EnvProbe, device: torch.device):
    return BrightnessMemory(frozen_language_model(config, device), config.memo_size)


@pytest.fixture
def brightness_agent():
    register_agent(
        AgentSpec(
            "brightness",
            "toy frozen-memory agent of the architecture recipe",
            lambda c, shape, n_actions, memory_dim: CNNAgent(shape, n_actions, memory_dim, 32, 32, 32),
            build_brightness_memory,
            has_language_model=True,
            words=lambda config: "token of the mean brightness",
        )
    )
    yield get_agent_spec("brightness")
    unregister_agent("brightness")


def test_a_memory_agent_registered_from_outside_trains_evaluates_and_reads(
    brightness_agent, tmp_path, capsys, tiny_llama_with_tokenizer_dir
):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "brightness", "--steps", "64", "--n-envs", "2"]
    argv += ["--set", f"lm={tiny_llama_with_tokenizer_dir}", "--set", "mem_len=4", "--set", "n_steps=32"]
    assert main([*argv, "--run-dir", str(run), "--quiet"]) == 0
    rows = read_metrics(run)
    assert [r["global_step"] for r in rows] == [64]
    assert 0.0 < rows[0]["memo_hit_rate"] < 1.0  # the base's memo cache, logged like HELM's
    identity = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert identity["kind"] == "brightness" and identity["mapping"] == "mean brightness"
    assert identity["mem_len"] == 4 and identity["lm"] == str(tiny_llama_with_tokenizer_dir)

    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy"]["episodes"] == 2
    assert main(["inspect", str(run), "--episodes", "1"]) == 0
    page = (run / "inspect" / "inspect.html").read_text()
    assert "token of the mean brightness" in page
