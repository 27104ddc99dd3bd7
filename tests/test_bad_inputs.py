"""Each class of bad input, driven through the CLI: one line on stderr that names the value and the fix, exit code
2, and no run directory left behind. The memory pre-flight refuses a run of ten times the machine's memory before
any of it is allocated."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from shelm.cli import main
from shelm.envs import EnvSettings, make_env


def _total_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 2**10
    raise AssertionError("no MemTotal")


def _ten_times_the_machine() -> list[str]:
    """n_steps for a rollout of 16 envs of MiniGrid frames that alone is ten times this machine's memory."""
    frame = math.prod(make_env(EnvSettings("MiniGrid-Empty-5x5-v0")).observation_space.shape)
    return ["--set", f"n_steps={math.ceil(10 * _total_memory() / (16 * frame))}"]


CASES = [
    # non-finite numbers
    (["--set", "lr=inf"], "--set lr=inf: give a finite number"),
    (["--agent", "helm", "--set", "beta=nan"], "--set beta=nan: give a finite number"),
    # values the libraries underneath reject
    (["--seed", "-1"], "--seed -1: seeds are 0 .. 2**32 - 1"),
    (["--seed", str(2**64)], "seeds are 0 .. 2**32 - 1"),
    (["--set", "torch_threads=100000"], "--set torch_threads=100000: this machine has"),
    (["--set", "minigrid_tile_size=100000"], "--set minigrid_tile_size=100000: at most 64"),
    # a device the machine does not have (these machines have no GPU)
    (["--set", "device=cuda"], "--set device=cuda: this machine has no CUDA device"),
    # requests larger than the machine's memory
    (["--n-envs", "100000"], "lower --n-envs or --set n_steps"),
    (["--agent", "shelm", "--set", "lm_layers=1", "--set", "mem_len=100000000"], "lower --n-envs or --set mem_len"),
    # an instruction no agent or env can give the memory
    (["--set", "instruction=mission"], "--set instruction=mission: agent 'cnn' has no language memory to read it"),
    (
        ["--agent", "helm", "--set", "lm_layers=1", "--set", "instruction=goal"],
        "--set instruction=goal: env 'MiniGrid-Empty-5x5-v0' gives no text under that key (its texts are under "
        "mission)",
    ),
    (["--agent", "helm", "--set", "instruction_tokens=0"], "instruction_tokens=0 must be >= 1"),
    # actions the env does not have, or not a list of them
    (["--set", "env_actions=0,7"], "--set env_actions=0,7: env 'MiniGrid-Empty-5x5-v0' has actions 0..6, not 7"),
    (["--set", "env_actions=0,left"], "--set env_actions=0,left: 'left' is not an action index"),
    (["--set", "env_actions=2,2"], "--set env_actions=2,2: action 2 is given twice"),
    (["--set", "env_layouts=-1"], "env_layouts=-1 must be >= 0"),
    # truncated backpropagation through time for an agent without a recurrent state, or of negative length
    (["--set", "bptt_length=8"], "--set bptt_length=8: agent 'cnn' has no recurrent state"),
    (["--agent", "lstm", "--set", "bptt_length=-1"], "bptt_length=-1 must be >= 0"),
]


@pytest.mark.parametrize(("extra", "fragment"), CASES)
def test_bad_value_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, fragment):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "256", "--run-dir", str(run)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shelm: error: ") and err.count("\n") == 1 and fragment in err, err
    assert not run.exists() and not any(tmp_path.iterdir())


def test_a_run_directory_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "256"]
    assert main([*argv, "--run-dir", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--run-dir {blocker / 'run'}: cannot create it" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and blocker.read_text() == "not a folder"


def test_the_memory_preflight_refuses_ten_times_the_machine_before_allocating(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "256", "--run-dir", str(run)]
    started = time.monotonic()
    assert main([*argv, *_ten_times_the_machine()]) == 2
    assert time.monotonic() - started < 60  # refused from the estimate, not after trying to allocate
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this run would hold about" in err and "GiB of memory is available" in err, err
    needed, available = (float(part.split(" GiB")[0].split()[-1]) for part in err.split(" but "))
    assert needed >= 10 * _total_memory() / 2**30 * 0.99 and available < needed / 9
    assert not run.exists()
