"""Shared fixtures: tiny but real runs, trained through the same code path as `shelm train`."""

from __future__ import annotations

from pathlib import Path

import pytest

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
