"""Bad input: one line on stderr naming the value and the fix, exit code 2, nothing overwritten."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from shelm.cli import COMMANDS, Terminated, main


def _snapshot(root: Path) -> dict[str, str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _fails(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("shelm: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


class _ContinuousImageEnv(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


gym.register("shelmtest/ContinuousImage-v0", entry_point=_ContinuousImageEnv)


@pytest.mark.parametrize(
    ("env", "agent", "extra", "fragments"),
    [
        ("MiniGrid-NoSuchTask-v0", "cnn", [], ["unknown env 'MiniGrid-NoSuchTask-v0'", "shelm envs"]),
        ("MiniGrid-Empty5x5-v0", "cnn", [], ["did you mean 'MiniGrid-Empty-5x5-v0'"]),
        ("MiniGrid-Empty-5x5-v0", "gru", [], ["unknown agent 'gru'", "cnn, lstm, trxl, helm"]),
        ("CartPole-v1", "cnn", [], ["'CartPole-v1'", "not a uint8 HxWxC image"]),
        ("shelmtest/ContinuousImage-v0", "cnn", [], ["Box(-1.0, 1.0, (2,), float32)", "Discrete"]),
        ("MiniGrid-Empty-5x5-v0", "cnn", ["--set", "learnin_rate=1"], ["unknown setting 'learnin_rate'"]),
        ("MiniGrid-Empty-5x5-v0", "cnn", ["--set", "n_envs=many"], ["n_envs=many", "expected an integer"]),
        ("MiniGrid-Empty-5x5-v0", "cnn", ["--n-envs", "0"], ["n_envs=0 must be >= 1"]),
    ],
)
def test_bad_train_arguments(capsys, tmp_path, env, agent, extra, fragments):
    run_dir = tmp_path / "run"
    _fails(capsys, ["train", "--env", env, "--agent", agent, "--run-dir", str(run_dir), *extra], *fragments)
    assert not run_dir.exists()


def test_usage_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--steps", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value: 'many'" in err


@pytest.mark.parametrize(
    ("command", "interrupt", "code", "hint"),
    [
        (["train", "--env", "MiniGrid-Empty-5x5-v0"], Terminated, 143, "`shelm train --resume RUN_DIR` continues"),
        (["quickstart"], KeyboardInterrupt, 130, "`shelm train --resume RUN_DIR` continues"),
        (["envs"], KeyboardInterrupt, 130, None),
    ],
)
def test_an_interrupt_exits_with_its_signal_code_and_says_how_to_resume(
    monkeypatch, capsys, command, interrupt, code, hint
):
    def interrupted(args):
        raise interrupt

    monkeypatch.setitem(COMMANDS, command[0], interrupted)
    assert main(command) == code
    err = capsys.readouterr().err
    assert err == (f"shelm: interrupted; {hint} from the last checkpoint\n" if hint else "shelm: interrupted\n")


def test_existing_run_dir_is_never_overwritten(capsys, cnn_run):
    before = _snapshot(cnn_run)
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--run-dir", str(cnn_run)]
    _fails(capsys, argv, f"'{cnn_run}' already exists", "--resume", "--force")
    assert _snapshot(cnn_run) == before


def test_force_replaces_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "old.txt").write_text("old")
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "64", "--n-envs", "2"]
    argv += ["--set", "n_steps=32", "--set", "cnn_features=32", "--run-dir", str(run_dir), "--force", "--quiet"]
    assert main(argv) == 0
    assert not (run_dir / "old.txt").exists() and (run_dir / "checkpoints" / "latest").is_dir()


def test_resume_refuses_new_settings(capsys, cnn_run):
    before = _snapshot(cnn_run)
    _fails(capsys, ["train", "--resume", str(cnn_run), "--set", "lr=1"], "--resume continues a run with its saved")
    _fails(capsys, ["train", "--resume", str(cnn_run / "nope")], "no such run directory")
    assert _snapshot(cnn_run) == before


def _copy(run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run with a larger step budget, so that --resume must load its checkpoint."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["config"]["total_steps"] *= 2
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("damage", ["garbage_weights", "truncated_weights", "bad_json", "not_shelm", "missing_file"])
def test_corrupted_checkpoint_is_refused(capsys, tmp_path, cnn_run, damage):
    run = _copy(cnn_run, tmp_path)
    ckpt = run / "checkpoints" / "latest"
    if damage == "garbage_weights":
        (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated_weights":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "bad_json":
        (ckpt / "trainer.json").write_text("{not json")
    elif damage == "not_shelm":
        info = json.loads((ckpt / "trainer.json").read_text())
        info["format"] = "something-else"
        (ckpt / "trainer.json").write_text(json.dumps(info))
    else:
        (ckpt / "trainer.safetensors").unlink()
    before = _snapshot(run)
    _fails(capsys, ["eval", str(run), "--episodes", "1"], f"checkpoint '{ckpt}'")
    if damage != "bad_json":  # a bad trainer.json is caught even before loading (its step is unreadable)
        _fails(capsys, ["train", "--resume", str(run), "--quiet"], f"checkpoint '{ckpt}'")
    assert _snapshot(run) == before


def test_foreign_checkpoint_is_refused(capsys, tmp_path, cnn_run, lstm_run):
    run = _copy(lstm_run, tmp_path)
    shutil.rmtree(run / "checkpoints" / "latest")
    shutil.copytree(cnn_run / "checkpoints" / "latest", run / "checkpoints" / "latest")
    before = _snapshot(run)
    _fails(capsys, ["eval", str(run)], "was written for env_id='MiniGrid-Empty-5x5-v0'")
    _fails(capsys, ["train", "--resume", str(run), "--quiet"], "was written for env_id")
    assert _snapshot(run) == before


def test_checkpoint_of_another_network_size_is_refused(capsys, tmp_path, cnn_run):
    run = _copy(cnn_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["config"]["cnn_features"] = 96
    (run / "config.json").write_text(json.dumps(config))
    _fails(capsys, ["eval", str(run)], "does not fit this agent", "encoder.linear.weight")


def test_eval_of_a_directory_that_is_not_a_run(capsys, tmp_path):
    _fails(capsys, ["eval", str(tmp_path)], "not a shelm run directory")
    _fails(capsys, ["eval", str(tmp_path), "--episodes", "0"], "--episodes 0: evaluate at least 1 episode")


def test_the_installed_command_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "shelm.cli", "train", "--env", "NoSuchEnv-v0", "--agent", "cnn"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "unknown env 'NoSuchEnv-v0'" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_listings(capsys):
    assert main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "shelm/RandomMaze-v0\trandom_maze" in lines and "MiniGrid-MemoryS7-v0\tminigrid" in lines
    assert any(line.startswith("BabyAI-GoToRedBall-v0") for line in lines)
    assert main(["agents"]) == 0
    agents = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert agents == ["cnn", "lstm", "trxl", "helm", "helmv2", "shelm", "oracle", "dreamerv2"]
    assert main(["settings"]) == 0
    assert any(line.startswith("lr\t0.0003\t") for line in capsys.readouterr().out.splitlines())
