"""Agent dreamerv2 (sheeprl's DreamerV2 on shelm's envs) through the commands users type: a short run that learns
for a few gradient steps, then eval, plot and report on it, and the Python API playing it; the settings and commands
that cannot apply are refused in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import eval_actions, play_one_episode
from safetensors.torch import load_file

import shelm
from shelm.cli import main
from shelm.runs import checkpoint_path, read_metrics

pytestmark = pytest.mark.dreamer

ENV = "MiniGrid-MemoryS7-v0"
STEPS = 512
# About 25 gradient steps: 64 steps of random play, 2 pre-training steps, then one per 20 env steps; every env ends
# an episode (MemoryS7 times out at 245 steps).
TINY_DREAMER = [
    "--set", "dreamer_learning_starts=64",
    "--set", "dreamer_pretrain_steps=2",
    "--set", "dreamer_replay_ratio=0.05",
    "--set", "dreamer_batch_size=4",
    "--set", "dreamer_sequence_length=16",
    "--set", "dreamer_log_every=64",
    "--set", "torch_threads=1",
]  # fmt: skip


def _train_argv(run_dir: Path, *extra: str) -> list[str]:
    argv = ["train", "--env", ENV, "--agent", "dreamerv2", "--steps", str(STEPS), "--n-envs", "2", "--seed", "3"]
    return [*argv, "--run-dir", str(run_dir), "--quiet", *TINY_DREAMER, *extra]


@pytest.fixture(scope="module")
def dreamer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("dreamer") / "runs" / "dv2"
    assert main(_train_argv(run_dir)) == 0
    return run_dir


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_training_writes_a_shelm_run_directory(dreamer_run: Path):
    saved = json.loads((dreamer_run / "config.json").read_text())
    assert saved["command"].startswith("shelm train --env MiniGrid-MemoryS7-v0 --agent dreamerv2")
    config = saved["config"]
    assert config["agent"] == "dreamerv2" and config["dreamer_size"] == "small"
    assert config["dreamer_batch_size"] == 4 and config["dreamer_sequence_length"] == 16
    resolved = (dreamer_run / "sheeprl.yaml").read_text()
    assert "dense_units: 128" in resolved and "shelm.dreamer.worker.sheeprl_env" in resolved

    rows = read_metrics(dreamer_run)
    assert len(rows) >= 3
    ppo_keys = {"global_step", "sps", "return_mean", "return_std", "success_rate", "length_mean", "episodes"}
    assert all(ppo_keys <= set(row) for row in rows)
    assert [row["global_step"] for row in rows] == sorted(row["global_step"] for row in rows)
    assert rows[-1]["global_step"] >= STEPS
    assert rows[-1]["episodes"] >= 1 and 0 <= rows[-1]["success_rate"] <= 1
    assert rows[-1]["world_model_loss"] > 0 and rows[-1]["replay_ratio"] > 0  # it learned
    assert list(dreamer_run.rglob("events.out.tfevents.*"))

    latest = dreamer_run / "checkpoints" / "latest"
    info = json.loads((latest / "trainer.json").read_text())
    assert info["global_step"] == rows[-1]["global_step"] and info["gradient_steps"] >= 3
    assert load_file(latest / "world_model.safetensors") and load_file(latest / "actor.safetensors")
    assert not list(dreamer_run.rglob("*.ckpt"))  # sheeprl's pickled checkpoint is converted, then gone


def test_eval_plays_the_trained_player_greedy_and_sampled(dreamer_run: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["eval", str(dreamer_run), "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agent"] == "dreamerv2" and report["env_id"] == ENV and report["global_step"] >= STEPS
    for mode in ("greedy", "sampled"):
        assert report[mode]["episodes"] == 2
        assert {"return_mean", "return_std", "success_rate", "length_mean"} <= set(report[mode])
        assert 0 < report[mode]["length_mean"] <= 245  # MemoryS7's time limit
    again = main(["eval", str(dreamer_run), "--episodes", "2", "--json"])
    assert again == 0 and json.loads(capsys.readouterr().out)["sampled"] == report["sampled"]  # reproducible


def test_plot_and_report_treat_it_like_any_baseline(
    dreamer_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    folder = tmp_path / "sweep"
    shutil.copytree(dreamer_run, folder / dreamer_run.name)
    assert main(["plot", str(folder / dreamer_run.name), "--out", str(tmp_path / "curves.png")]) == 0
    assert "dreamerv2" in capsys.readouterr().out and (tmp_path / "curves.png").is_file()
    assert main(["report", str(folder), "--reps", "100"]) == 0
    assert "| dreamerv2 |" in (folder / "report.md").read_text()


def test_inspect_and_analyze_are_refused_in_one_line(dreamer_run: Path, capsys: pytest.CaptureFixture[str]):
    err = _one_line_error(capsys, main(["inspect", str(dreamer_run)]))
    assert "shelm inspect works on shelm's PPO agents" in err and "shelm eval" in err
    err = _one_line_error(capsys, main(["analyze", str(dreamer_run), "--what", "robustness"]))
    assert "shelm analyze works on shelm's PPO agents" in err
    assert main(["train", "--resume", str(dreamer_run)]) == 0  # it has trained its steps: nothing to continue
    assert "already finished its 512 steps" in capsys.readouterr().out


def test_a_killed_run_continues_from_its_last_checkpoint(tmp_path: Path):
    """Killed after its first checkpoint, a run goes on from that checkpoint's step with sheeprl's state (it does not
    start again): its metrics up to the checkpoint are kept and no step is played twice."""
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "shelm.cli", *_train_argv(run_dir, "--set", "dreamer_checkpoint_every=128")]
    trainer = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while checkpoint_path(run_dir, "latest") is None:
        assert trainer.poll() is None, trainer.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.1)
    os.killpg(trainer.pid, signal.SIGKILL)  # the command and the sheeprl process it started
    trainer.wait()
    latest = checkpoint_path(run_dir, "latest")
    saved = json.loads((latest / "trainer.json").read_text())
    assert 0 < saved["global_step"] < STEPS and list(run_dir.rglob("*.ckpt"))
    kept = [row for row in read_metrics(run_dir) if row["global_step"] <= saved["global_step"]]

    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    rows = read_metrics(run_dir)
    steps = [row["global_step"] for row in rows]
    assert rows[: len(kept)] == kept and steps == sorted(set(steps)) and steps[-1] == STEPS
    assert steps[len(kept)] > saved["global_step"] and rows[len(kept)]["episodes"] >= saved["episodes"]["total"]
    final = json.loads((run_dir / "checkpoints" / "latest" / "trainer.json").read_text())
    assert final["global_step"] == STEPS and final["gradient_steps"] > saved["gradient_steps"]
    assert not list(run_dir.rglob("*.ckpt"))  # sheeprl's pickled checkpoints are gone once the run is done


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("dreamer_batch_size=0", "dreamer_batch_size=0 must be >= 1"),
        ("dreamer_size=huge", "expected one of small, sheeprl"),
        ("dreamer_sequence_length=1000", "dreamer_sequence_length=1000 is longer than the replay buffer"),
    ],
)
def test_a_bad_dreamer_setting_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, fragment: str
):
    run_dir = tmp_path / "bad"
    assert fragment in _one_line_error(capsys, main(_train_argv(run_dir, "--set", setting)))
    assert not run_dir.exists()


def test_without_sheeprl_the_agent_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "sheeprl" else find_spec(name, *args)
    )
    run_dir = tmp_path / "none"
    err = _one_line_error(capsys, main(_train_argv(run_dir)))
    assert 'pip install -e ".[dreamer]"' in err and not run_dir.exists()


def test_the_python_api_plays_the_player_in_a_user_loop_as_shelm_eval_does(
    dreamer_run: Path, monkeypatch: pytest.MonkeyPatch
):
    greedy = eval_actions(dreamer_run, 1, monkeypatch)["greedy"][:, 0]  # one env, one episode
    agent = shelm.load(dreamer_run)
    assert agent.config.agent == "dreamerv2" and agent.global_step == STEPS
    chosen = play_one_episode(agent, agent.seed)  # `shelm eval`'s seed; the player's draws are seeded with it too
    assert chosen == greedy.tolist()
