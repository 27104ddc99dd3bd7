"""A run killed with SIGKILL at any moment resumes to its budget with continuous, uncorrupted records, drawing what an
uninterrupted run would from its checkpoint's state."""

from __future__ import annotations

import torch
from conftest import TINY, kill_after_rows, start_cli

from shelm import ppo
from shelm.agents.policy import sample_actions
from shelm.cli import main
from shelm.ppo import load_policy
from shelm.runs import read_metrics

BATCH = 4 * 32  # n_envs * n_steps of the run below
STEPS = 40 * BATCH


def test_sigkill_then_resume_finishes_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "lstm", "--steps", str(STEPS), "--n-envs", "4"]
    argv += ["--run-dir", str(run_dir), "--quiet", *TINY, "--set", "checkpoint_every=1"]
    kill_after_rows(start_cli(argv), run_dir, rows=5)
    # Kill the resumed process too, at another point, before letting a third one finish.
    kill_after_rows(start_cli(["train", "--resume", str(run_dir), "--quiet"]), run_dir, rows=15)
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0

    steps = [row["global_step"] for row in read_metrics(run_dir)]
    assert steps == list(range(BATCH, STEPS + 1, BATCH))  # continuous: no gap, no duplicate
    assert [row["iteration"] for row in read_metrics(run_dir)] == list(range(1, 41))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 40  # no cut-off line left behind
    _, _, state = load_policy(run_dir, "latest")
    assert state["global_step"] == STEPS
    load_policy(run_dir, "best")
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    # A finished run is not trained further.
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert len(read_metrics(run_dir)) == 40


def test_a_resumed_run_draws_what_an_uninterrupted_run_draws_from_the_same_state(tmp_path, monkeypatch):
    """The checkpoint keeps the generator that draws every action and the one that cuts minibatches, and a resumed
    run takes them back after loading: from a checkpoint, the draws go on as an uninterrupted run's do."""
    logits = torch.linspace(-2.0, 2.0, 7).repeat(256, 1)  # fixed: the draws then differ only by the generator
    draws: dict[str, list[torch.Tensor]] = {"whole": [], "interrupted": []}
    shuffles: dict[str, list[torch.Tensor]] = {"whole": [], "interrupted": []}
    recording = {"into": "whole", "stop_before": None}
    collect, update = ppo.Collector.collect, ppo.ppo_update

    def recorded_collect(self):
        if len(draws[recording["into"]]) == recording["stop_before"]:
            raise KeyboardInterrupt  # killed between iterations, after the last one's checkpoint
        actions = torch.Generator()
        actions.set_state(self.loop.actor.generator.get_state())  # a copy: what the next rollout's draws start from
        draws[recording["into"]].append(sample_actions(logits, actions)[0])
        return collect(self)

    def recorded_update(agent, optimizer, rollout, config, ent_coef, generator, *args):
        shuffles[recording["into"]].append(generator.get_state().clone())
        return update(agent, optimizer, rollout, config, ent_coef, generator, *args)

    monkeypatch.setattr(ppo.Collector, "collect", recorded_collect)
    monkeypatch.setattr(ppo, "ppo_update", recorded_update)
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "512", "--n-envs", "4"]
    argv += ["--quiet", *TINY, "--set", "checkpoint_every=1"]
    assert main([*argv, "--run-dir", str(tmp_path / "whole")]) == 0

    recording.update(into="interrupted", stop_before=2)
    assert main([*argv, "--run-dir", str(tmp_path / "interrupted")]) == 130
    assert [row["global_step"] for row in read_metrics(tmp_path / "interrupted")] == [128, 256]
    recording["stop_before"] = None
    assert main(["train", "--resume", str(tmp_path / "interrupted"), "--quiet"]) == 0

    whole, resumed = draws["whole"], draws["interrupted"]
    assert len(whole) == len(resumed) == 4 and not torch.equal(whole[0], whole[2])  # the stream moves on
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(shuffles["whole"], shuffles["interrupted"], strict=True))
