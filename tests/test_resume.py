"""A run killed with SIGKILL at any moment resumes to its budget with continuous, uncorrupted records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import TINY

from shelm.cli import main
from shelm.ppo import load_policy
from shelm.runs import read_metrics

BATCH = 4 * 32  # n_envs * n_steps of the run below
STEPS = 40 * BATCH


def _start(argv: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "shelm.cli", *argv]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen, run_dir: Path, rows: int) -> None:
    """SIGKILL once metrics.jsonl has `rows` rows (mid-run: checkpoints are written every iteration)."""
    deadline = time.monotonic() + 120
    while len(read_metrics(run_dir)) < rows:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "training did not progress"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_then_resume_finishes_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "lstm", "--steps", str(STEPS), "--n-envs", "4"]
    argv += ["--run-dir", str(run_dir), "--quiet", *TINY, "--set", "checkpoint_every=1"]
    _kill_after(_start(argv), run_dir, rows=5)
    # Kill the resumed process too, at another point, before letting a third one finish.
    _kill_after(_start(["train", "--resume", str(run_dir), "--quiet"]), run_dir, rows=15)
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
