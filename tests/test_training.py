"""The trainer end to end: learning, determinism, the frozen-memory slot, evaluation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import train_run

from shelm import ppo
from shelm.agents import AgentSpec, get_agent_spec, register_agent, unregister_agent
from shelm.agents.cnn import CNNAgent
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.envs import probe_env
from shelm.evaluate import evaluate
from shelm.runs import read_metrics


def test_cnn_ppo_learns_empty_5x5(tmp_path, capsys):
    """A real learning threshold: the default CNN-PPO solves MiniGrid-Empty-5x5 in 32k steps (~70 s on 2 cores)."""
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "32768", "--seed", "0"]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["greedy"]["success_rate"] >= 0.9 and report["sampled"]["success_rate"] >= 0.9
    # The shortest Empty-5x5 episode takes 5 actions (return 1 - 0.9 * 5/100 = 0.955); random walks score ~0.1.
    assert report["return_mean"] >= 0.9
    rows = read_metrics(tmp_path / "run")
    assert rows[-1]["success_rate"] >= 0.9 and rows[0]["return_mean"] < 0.6


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ppo.MACHINE_KEYS} for row in rows]


@pytest.mark.parametrize("agent", ["cnn", "lstm", "helm", "helmv2", "shelm", "oracle"])
def test_same_seed_gives_identical_metrics(tmp_path, agent, tiny_llama_with_tokenizer_dir):
    """Every agent, its frozen memory included, is a function of the seed: the same seed gives the same metrics
    rows (all but the machine's timings), another seed different ones."""
    lm = ["--set", f"lm={tiny_llama_with_tokenizer_dir}", "--set", "mem_len=8"]
    extra = lm if get_agent_spec(agent).has_language_model else []
    first = train_run(tmp_path / "a", "MiniGrid-MemoryS7-v0", agent, 384, *extra)
    second = train_run(tmp_path / "b", "MiniGrid-MemoryS7-v0", agent, 384, *extra)
    rows = _comparable(read_metrics(first))
    assert len(rows) == 3 and rows == _comparable(read_metrics(second))
    other = train_run(tmp_path / "c", "MiniGrid-MemoryS7-v0", agent, 384, *extra, seed=2)
    assert _comparable(read_metrics(other)) != rows


class RecordingMemory:
    """A frozen memory for the test: per env, the step count since the episode start and the mean pixel."""

    output_dim = 2
    window_steps = 0

    def identity(self) -> dict:
        return {"kind": "recording"}

    def state_dict(self) -> dict:
        return {"scale": torch.ones(1)}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __init__(self) -> None:
        self.calls = 0
        self.outputs: list[torch.Tensor] = []

    def state_bytes(self, n_envs: int) -> int:
        return 4 * n_envs

    def reset(self, n_envs: int) -> None:
        self.count = torch.zeros(n_envs)

    def last_words(self) -> list:
        return []

    def metrics(self) -> dict:
        return {"recording_calls": float(self.calls)}

    def step(self, obs: torch.Tensor, episode_start: torch.Tensor, info: dict | None = None) -> torch.Tensor:
        self.calls += 1
        self.count = torch.where(episode_start, 0.0, self.count + 1)
        out = torch.stack([self.count, obs.float().mean(dim=(1, 2, 3)) / 255], dim=1)
        self.outputs.append(out)
        return out


@pytest.fixture
def register_for_the_test():
    """`register_agent` for one test: the agents it registers are forgotten when it ends."""
    names = []

    def register(spec: AgentSpec) -> None:
        register_agent(spec)
        names.append(spec.name)

    yield register
    for name in names:
        unregister_agent(name)


def test_memory_output_is_stored_once_per_step_and_never_recomputed(tmp_path, monkeypatch, register_for_the_test):
    memory = RecordingMemory()
    spec = AgentSpec(
        "recording",
        "test agent",
        lambda c, shape, n, m: CNNAgent(shape, n, m, cnn_features=32, critic_hidden=32),
        lambda c, probe, device: memory,
    )
    register_for_the_test(spec)
    rollouts = []
    real_collect, real_update = ppo.Collector.collect, ppo.ppo_update

    def collect(self):
        rollouts.append(real_collect(self))
        return rollouts[-1]

    def update(agent, optimizer, rollout, *args):
        calls = memory.calls
        out = real_update(agent, optimizer, rollout, *args)
        assert memory.calls == calls, "the PPO update called the frozen memory"
        return out

    monkeypatch.setattr(ppo.Collector, "collect", collect)
    monkeypatch.setattr(ppo, "ppo_update", update)
    config = TrainConfig(
        env_id="MiniGrid-Empty-5x5-v0", agent="recording", total_steps=2 * 3 * 16, n_envs=3, n_steps=16, n_minibatches=2
    )
    ppo.train(config, probe_env(config), tmp_path)
    # One call for the first observation after reset, then one per environment step.
    assert memory.calls == 1 + 2 * 16
    stored = torch.cat([r.memory for r in rollouts])
    assert torch.equal(stored, torch.stack(memory.outputs[:-1]))
    starts = torch.cat([r.episode_start for r in rollouts])
    assert torch.equal(stored[..., 0] == 0, starts)  # the memory saw each episode start
    assert not stored.requires_grad
    # The memory's own counters (e.g. the retrieval cache's hit rate) are logged with every iteration.
    assert [row["recording_calls"] for row in read_metrics(tmp_path)] == [17.0, 33.0]


def test_standardized_fusion_learns_its_statistics_between_updates_saves_and_resumes_them(
    tmp_path, monkeypatch, register_for_the_test
):
    from safetensors.torch import load_file

    built: list[CNNAgent] = []

    def build(config, shape, n_actions, memory_dim):
        built.append(CNNAgent(shape, n_actions, memory_dim, cnn_features=32, critic_hidden=32, fusion=config.fusion))
        return built[-1]

    register_for_the_test(AgentSpec("recording", "test agent", build, lambda c, probe, d: RecordingMemory()))
    rollouts, counts_at_update = [], []
    real_collect, real_update = ppo.Collector.collect, ppo.ppo_update

    def collect(self):
        rollouts.append(real_collect(self))
        return rollouts[-1]

    def update(agent, *args):
        counts_at_update.append(float(agent.memory_count))
        return real_update(agent, *args)

    monkeypatch.setattr(ppo.Collector, "collect", collect)
    monkeypatch.setattr(ppo, "ppo_update", update)
    config = TrainConfig(
        env_id="MiniGrid-Empty-5x5-v0",
        agent="recording",
        total_steps=2 * 3 * 16,
        n_envs=3,
        n_steps=16,
        n_minibatches=2,
        fusion="standardized",
    )
    ppo.train(config, probe_env(config), tmp_path)
    # Each rollout's update saw the statistics of the rollouts before it, not its own.
    assert counts_at_update == [0.0, 48.0]
    agent, seen = built[0], torch.cat([r.memory for r in rollouts]).reshape(-1, 2).double()
    assert float(agent.memory_count) == 96
    torch.testing.assert_close(agent.memory_mean.double(), seen.mean(0))
    torch.testing.assert_close(agent.memory_var.double(), seen.var(0, unbiased=False))
    saved = load_file(tmp_path / "checkpoints" / "latest" / "model.safetensors")
    for name in ("memory_mean", "memory_var", "memory_count"):
        torch.testing.assert_close(saved[name], getattr(agent, name))
    # Resumed, the run starts from the saved statistics (its first update sees 96 rows) and goes on folding.
    longer = dataclasses.replace(config, total_steps=3 * 3 * 16)
    ppo.train(longer, probe_env(longer), tmp_path, resume=True)
    resumed, seen = built[1], torch.cat([r.memory for r in rollouts]).reshape(-1, 2).double()
    assert counts_at_update == [0.0, 48.0, 96.0] and float(resumed.memory_count) == 144
    torch.testing.assert_close(resumed.memory_mean.double(), seen.mean(0))
    torch.testing.assert_close(resumed.memory_var.double(), seen.var(0, unbiased=False))


def test_eval_reports_both_modes_and_writes_video(cnn_run, capsys):
    assert main(["eval", str(cnn_run), "--episodes", "3", "--video", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("return_mean", "return_std", "success_rate", "episodes"):
        assert report[key] == report["greedy"][key]
    assert report["episodes"] == 3 and report["sampled"]["episodes"] == 3
    assert 0 <= report["success_rate"] <= 1 and report["global_step"] == 256
    for video in report["videos"]:
        assert Path(video).stat().st_size > 1000 and Path(video).suffix in (".mp4", ".gif")


def test_eval_is_reproducible_and_carries_the_lstm_state(lstm_run):
    first = evaluate(lstm_run, episodes=4, seed=5)
    assert first == evaluate(lstm_run, episodes=4, seed=5)
    assert first["greedy"]["episodes"] == 4


def test_run_directory_contents(cnn_run):
    saved = json.loads((cnn_run / "config.json").read_text())
    assert saved["config"]["env_id"] == "MiniGrid-Empty-5x5-v0" and saved["config"]["seed"] == 1
    assert {"torch", "gymnasium", "minigrid", "shelm", "python"} <= set(saved["versions"])
    assert saved["command"].startswith("shelm train --env MiniGrid-Empty-5x5-v0 --agent cnn --steps 256")
    rows = read_metrics(cnn_run)
    assert [r["global_step"] for r in rows] == [128, 256]
    required = {"global_step", "sps", "return_mean", "success_rate", "policy_loss", "value_loss", "entropy", "lr"}
    assert required <= set(rows[0])
    assert list(cnn_run.glob("events.out.tfevents.*"))
    for name in ("latest", "best"):
        files = sorted(p.name for p in (cnn_run / "checkpoints" / name).iterdir())
        assert files == ["model.safetensors", "trainer.json", "trainer.safetensors"]
