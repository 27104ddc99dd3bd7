"""`shelm sweep` (local pool and Ray) and `shelm report`: run directories, resume after a kill, bad specs, and
the report's statistics recomputed by hand from metrics.jsonl."""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shelm.agents import AGENTS, resolve_config
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.experiments.report.page import markers, sweep_labels
from shelm.experiments.report.statistics import iqm_with_ci, rank_sum_decision
from shelm.runs import append_metrics, read_metrics, save_run_config

ENV = "MiniGrid-Empty-5x5-v0"
TINY = ["n_envs=4", "n_steps=32", "cnn_features=64", "critic_hidden=64", "lstm_hidden=32"]
SETS = [arg for setting in TINY for arg in ("--set", setting)]
BATCH = 4 * 32


def _final(run_dir: Path) -> float:
    """The report's per-trial score, by hand: success_rate over the last 10% of the training steps."""
    rows = [r for r in read_metrics(run_dir) if r["success_rate"] is not None]  # None before any episode ended
    last = rows[-1]["global_step"]
    return float(np.mean([r["success_rate"] for r in rows if r["global_step"] > 0.9 * last]))


def _report(sweep: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.md"
    assert main(["report", str(sweep), "--out", str(out), "--reps", "300", *extra]) == 0
    return json.loads((tmp_path / f"{sweep.name}-report.json").read_text())


def test_local_sweep_runs_each_trial_and_reports_its_numbers(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    argv = ["sweep", "--agents", "cnn", "--envs", ENV, "--seeds", "2", "--steps", str(4 * BATCH), "--out", str(sweep)]
    assert main([*argv, *SETS]) == 0
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert names == [f"{ENV}__cnn__s1", f"{ENV}__cnn__s2"]
    for seed, name in enumerate(names, start=1):
        config = json.loads((sweep / name / "config.json").read_text())
        assert config["config"]["seed"] == seed and config["config"]["torch_threads"] == 1
        assert config["command"] == shlex.join(["shelm", *argv, *SETS])  # the sweep's own command line
        assert [r["global_step"] for r in read_metrics(sweep / name)] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]
        assert (sweep / name / "checkpoints" / "latest" / "model.safetensors").is_file()
    manifest = json.loads((sweep / "sweep.json").read_text())["invocations"]
    assert manifest[0]["trials"] == names and manifest[0]["seeds"] == [1, 2]
    capsys.readouterr()

    numbers = _report(sweep, tmp_path)
    finals = [_final(sweep / name) for name in names]
    (row,) = numbers["table"]
    assert row["agent"] == "cnn" and row["env"] == ENV and row["seeds"] == [1, 2]
    assert row["scores"] == pytest.approx(finals)
    assert row["iqm"] == pytest.approx(np.mean(finals))  # a 25% trim of 2 values drops none
    assert min(finals) - 1e-9 <= row["ci"][0] <= row["iqm"] <= row["ci"][1] <= max(finals) + 1e-9
    markdown = (tmp_path / "report.md").read_text()
    assert f"| {ENV} | cnn | 2 | {row['iqm']:.3f}" in markdown
    assert numbers["no_run"] == [] and "no run" not in markdown
    assert (tmp_path / "sweep-curves.png").stat().st_size > 0 and (tmp_path / "sweep-final.png").stat().st_size > 0


def test_ray_sweep_runs_the_same_trials(tmp_path):
    sweep = tmp_path / "sweep"
    # 4 x 32 steps per env outlast Empty-5x5's 100-step limit: every trial has finished episodes to score.
    argv = ["sweep", "--agents", "cnn,lstm", "--envs", ENV, "--seeds", "1", "--steps", str(4 * BATCH)]
    assert main([*argv, "--out", str(sweep), "--ray", "local", "--workers", "2", *SETS]) == 0
    for agent in ("cnn", "lstm"):
        run_dir = sweep / f"{ENV}__{agent}__s1"
        assert json.loads((run_dir / "config.json").read_text())["config"]["agent"] == agent
        assert [r["global_step"] for r in read_metrics(run_dir)] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]
    numbers = _report(sweep, tmp_path)
    assert {row["agent"]: row["iqm"] for row in numbers["table"]} == pytest.approx(
        {agent: _final(sweep / f"{ENV}__{agent}__s1") for agent in ("cnn", "lstm")}
    )


def _unlocked(run_dir: Path) -> bool:
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_sweep_skips_finished_trials_and_resumes_the_interrupted_one(tmp_path, capsys, kill):
    sweep, steps = tmp_path / "sweep", 20 * BATCH
    argv = ["sweep", "--agents", "cnn", "--envs", ENV, "--seeds", "2", "--steps", str(steps), "--out", str(sweep)]
    argv += [*SETS, "--set", "checkpoint_every=1", "--workers", "1"]
    first, second = sweep / f"{ENV}__cnn__s1", sweep / f"{ENV}__cnn__s2"
    with (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "shelm.cli", *argv], stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 240
        while len(read_metrics(second)) < 3:  # seed 1 is done (one worker runs trials in order), seed 2 is mid-way
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep did not progress"
            time.sleep(0.05)
        os.kill(proc.pid, kill)
        returncode = proc.wait(timeout=60)
        stderr.seek(0)
        said = stderr.read()
    if kill == signal.SIGTERM:  # unwinds like Ctrl-C: its pool is shut down, nothing leaks
        assert returncode == 128 + signal.SIGTERM
        assert "shelm: interrupted; the same `shelm sweep` command continues" in said
        assert "leaked" not in said
    else:
        assert returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while not _unlocked(second):  # the worker dies with the sweep: nothing trains the trial any more
        assert time.monotonic() < deadline, "the pool worker outlived the killed sweep"
        time.sleep(0.1)
    done_before = (first / "metrics.jsonl").read_bytes()
    assert read_metrics(first)[-1]["global_step"] == steps
    interrupted_at = len(read_metrics(second))
    assert 3 <= interrupted_at < 20

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 finished (skipped), 1 to resume, 0 new" in out
    assert f"resume {second.name} from step" in out
    assert (first / "metrics.jsonl").read_bytes() == done_before  # untouched
    assert [r["global_step"] for r in read_metrics(second)] == list(range(BATCH, steps + 1, BATCH))
    # A third start has nothing left to do.
    assert main(argv) == 0
    assert "2 finished (skipped), 0 to resume, 0 new" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--agents", "cnn,transformer"], "unknown agent 'transformer'"),
        (["--envs", "MiniGrid-Empty-5x5-v1"], "unknown env 'MiniGrid-Empty-5x5-v1'"),
        (["--seeds", "0"], "--seeds 0"),
        (["--seeds", "3-2"], "--seeds 3-2: a sweep needs at least 1 seed"),
        (["--seeds", "0-2"], "--seeds 0-2: a sweep needs at least 1 seed, numbered from 1"),
        (["--seeds", "two"], "--seeds two: give N (seeds 1..N) or A-B (seeds A..B)"),
        (["--steps", "0"], "--steps 0"),
        (["--ray", "127.0.0.1:1"], "--ray 127.0.0.1:1: cannot reach a Ray head"),
        (["--ray", "nohost"], "--ray 'nohost': give HOST:PORT"),
        (["--set", "helm:lm_layers=2"], "'helm' is not an agent of this sweep"),
        (["--set", "seed=3"], "--set seed=...: a sweep sets seed"),
        (["--set", "learning_rate=0.1"], "learning_rate"),
    ],
)
def test_bad_sweep_specs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, change, message):
    spec = {"--agents": "cnn", "--envs": ENV, "--seeds": "1", "--out": str(tmp_path / "sweep")}
    spec.update(dict(zip(change[::2], change[1::2], strict=True)))
    argv = ["sweep", *[x for item in spec.items() for x in item]]
    if change[0] == "--set":
        argv += change
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_refuses_a_folder_trained_with_other_settings_but_takes_other_threads(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    argv = ["sweep", "--agents", "cnn", "--envs", ENV, "--seeds", "1", "--steps", str(BATCH), "--out", str(sweep)]
    assert main([*argv, *SETS]) == 0
    before = (sweep / f"{ENV}__cnn__s1" / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*argv, *SETS, "--set", "lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "was trained with lr=0.0003, this sweep asks lr=0.001" in err and err.count("\n") == 1
    assert (sweep / f"{ENV}__cnn__s1" / "metrics.jsonl").read_bytes() == before
    # More threads only change how fast it computes, and a CNN without a memory has nothing to fuse: the finished
    # trial is the same trial, and is skipped. A memory agent's fusion is part of what it is.
    for setting in ("torch_threads=2", "fusion=concat"):
        assert main([*argv, *SETS, "--set", setting]) == 0
        assert "1 finished (skipped)" in capsys.readouterr().out
    assert (sweep / f"{ENV}__cnn__s1" / "metrics.jsonl").read_bytes() == before
    # A trial saved before an agent-specific setting existed reads it at its old value ('relative' for trxl's
    # positions); to every other agent it is another agent's setting, so the folder is still the same trial.
    config_path = sweep / f"{ENV}__cnn__s1" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["config"]["trxl_positional_encoding"]
    config_path.write_text(json.dumps(saved))
    assert main([*argv, *SETS]) == 0
    assert "1 finished (skipped)" in capsys.readouterr().out
    trxl_owned = {key for key in TrainConfig.__dataclass_fields__ if key.startswith("trxl_")}
    dreamer_owned = {key for key in TrainConfig.__dataclass_fields__ if key.startswith("dreamer_")}
    assert set(AGENTS["cnn"].ignored_settings) == set(AGENTS["lstm"].ignored_settings)
    assert set(AGENTS["cnn"].ignored_settings) == {"fusion"} | trxl_owned | dreamer_owned
    for name in ("helm", "helmv2", "shelm", "oracle"):
        assert set(AGENTS[name].ignored_settings) == trxl_owned | dreamer_owned
    assert set(AGENTS["trxl"].ignored_settings) == {"fusion"} | dreamer_owned


def test_a_seed_range_adds_seeds_to_a_sweep_and_leaves_its_trials_alone(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    argv = ["sweep", "--agents", "cnn", "--envs", ENV, "--steps", str(BATCH), "--out", str(sweep), *SETS]
    assert main([*argv, "--seeds", "1"]) == 0
    first = (sweep / f"{ENV}__cnn__s1" / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--seeds", "2-3"]) == 0
    assert "2 trials in" in capsys.readouterr().out
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [f"{ENV}__cnn__s{seed}" for seed in (1, 2, 3)]
    for seed in (2, 3):
        config = json.loads((sweep / f"{ENV}__cnn__s{seed}" / "config.json").read_text())
        assert config["config"]["seed"] == seed and config["command"] == shlex.join(["shelm", *argv, "--seeds", "2-3"])
        assert [r["global_step"] for r in read_metrics(sweep / f"{ENV}__cnn__s{seed}")] == [BATCH]
    assert (sweep / f"{ENV}__cnn__s1" / "metrics.jsonl").read_bytes() == first
    manifest = json.loads((sweep / "sweep.json").read_text())["invocations"]
    assert [entry["seeds"] for entry in manifest] == [[1], [2, 3]]
    assert manifest[1]["trials"] == [f"{ENV}__cnn__s2", f"{ENV}__cnn__s3"]
    # The whole range again: seed 1 to 3 are one sweep, all finished.
    assert main([*argv, "--seeds", "3"]) == 0
    assert "3 finished (skipped), 0 to resume, 0 new" in capsys.readouterr().out


# --- the report's statistics on runs with known scores -----------------------------------------------------


def _fake_run(root: Path, env_id: str, agent: str, seed: int, finals: float, steps: int = 1000) -> None:
    """A run directory whose success_rate is 0 for the first 90% of training and `finals` after."""
    config, applied = resolve_config(env_id, agent, {"seed": seed, "total_steps": steps, "n_envs": 1, "n_steps": 10})
    run_dir = root / f"{env_id.replace('/', '_')}__{agent}__s{seed}"
    run_dir.mkdir(parents=True)
    save_run_config(run_dir, config, applied)
    for step in range(100, steps + 1, 100):
        append_metrics(run_dir, {"global_step": step, "success_rate": finals if step > 0.9 * steps else 0.0})


def test_publishing_copies_finished_trials_and_merges_the_sweep_record(tmp_path):
    """experiments/publish_finished.py: a finished trial's light files are copied into docs/runs/NAME, an unfinished
    one is not, and the published sweep.json keeps the invocations of an earlier, lost sweep folder."""
    sweep = tmp_path / "runs" / "stage"
    _fake_run(sweep, ENV, "cnn", 1, 0.5)
    _fake_run(sweep, ENV, "cnn", 2, 0.5, steps=2000)
    (sweep / f"{ENV}__cnn__s2" / "metrics.jsonl").write_text('{"global_step": 100, "success_rate": 0.0}\n')
    earlier = {"command": "shelm sweep --seeds 1", "started": "2026-12-01T00:00:00+00:00", "trials": ["a"]}
    now = {"command": "shelm sweep --seeds 2-2", "started": "2026-12-05T00:00:00+00:00", "trials": ["b"]}
    published = tmp_path / "docs" / "runs" / "stage"
    published.mkdir(parents=True)
    (published / "sweep.json").write_text(json.dumps({"invocations": [earlier]}))
    (sweep / "sweep.json").write_text(json.dumps({"invocations": [now]}))
    script = Path(__file__).resolve().parents[1] / "experiments" / "publish_finished.py"
    for _ in range(2):  # publishing again changes nothing
        done = subprocess.run(
            [sys.executable, str(script), str(sweep), "stage"], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        assert done.stdout == f"published {ENV}__cnn__s1\n"
        assert sorted(p.name for p in published.iterdir()) == [f"{ENV}__cnn__s1", "sweep.json"]
        assert json.loads((published / "sweep.json").read_text())["invocations"] == [earlier, now]
    for name in ("config.json", "metrics.jsonl"):
        copied = (published / f"{ENV}__cnn__s1" / name).read_bytes()
        assert copied == (sweep / f"{ENV}__cnn__s1" / name).read_bytes()
    # A damaged published record is named in one line and left as it is; the trials are still copied.
    (published / "sweep.json").write_text("{")
    damaged = subprocess.run([sys.executable, str(script), str(sweep), "stage"], cwd=tmp_path, capture_output=True)
    assert damaged.returncode == 2 and damaged.stderr.decode().count("\n") == 1
    assert b"docs/runs/stage/sweep.json' is damaged; move it away" in damaged.stderr
    assert (published / "sweep.json").read_text() == "{"


def test_publishing_copies_a_finished_peer_trial_whose_config_holds_its_budget_at_the_top(tmp_path):
    """experiments/lstm_parity.py writes the peer's step budget at the top of its config.json, not under "config";
    its finished trials are published like shelm's and its unfinished ones are not."""
    peers = tmp_path / "runs" / "parity-rppo"
    for seed, last_step in ((1, 4096), (2, 2048)):
        run_dir = peers / f"{ENV}__sb3-rppo__s{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(
            json.dumps({"peer": "sb3_contrib.RecurrentPPO", "env_id": ENV, "seed": seed, "total_steps": 4096})
        )
        (run_dir / "metrics.jsonl").write_text(json.dumps({"global_step": last_step, "success_rate": 0.5}) + "\n")
    script = Path(__file__).resolve().parents[1] / "experiments" / "publish_finished.py"
    done = subprocess.run(
        [sys.executable, str(script), str(peers), "parity-rppo"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == f"published {ENV}__sb3-rppo__s1\n"
    published = tmp_path / "docs" / "runs" / "parity-rppo"
    assert [p.name for p in published.iterdir()] == [f"{ENV}__sb3-rppo__s1"]  # no sweep.json to merge


def _iqm(values: list[float]) -> float:
    ordered = sorted(values)
    cut = int(0.25 * len(ordered))
    return float(np.mean(ordered[cut : len(ordered) - cut]))


def _rank_sum_p(x: list[float], y: list[float]) -> float:
    """Exact one-sided p of the Wilcoxon rank-sum statistic, by hand: tied scores share their mean rank, and p is the
    share of all ways to pick len(x) of the pooled scores whose rank sum is at least x's."""
    pooled = sorted(x + y)
    rank = {v: np.mean([i + 1 for i, w in enumerate(pooled) if w == v]) for v in pooled}
    observed = sum(rank[v] for v in x)
    sums = [sum(rank[pooled[i]] for i in c) for c in itertools.combinations(range(len(pooled)), len(x))]
    return sum(s >= observed - 1e-9 for s in sums) / len(sums)


def test_bootstrap_intervals_are_the_same_on_every_run_and_leave_numpy_alone():
    """The stratified bootstrap of a [seeds, envs] matrix gives the same CI whatever numpy's global generator
    holds, and leaves that generator where it was."""
    scores = np.random.default_rng(1).uniform(0.3, 0.9, (3, 2))
    intervals = []
    for state in (0, 12345):
        np.random.seed(state)
        before = np.random.get_state()[1].copy()
        intervals.append(iqm_with_ci(scores, reps=500))
        assert (np.random.get_state()[1] == before).all()
    assert intervals[0] == intervals[1]
    assert intervals[0][1] < intervals[0][0] < intervals[0][2]


@pytest.mark.parametrize(
    ("x", "y", "p", "higher", "decidable"),
    [
        ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], 1 / 20, True, True),  # all tied within groups: still every x above every y
        ([1.0, 1.0, 1.0], [0.0, 0.0], 1 / 10, False, False),  # the normal approximation would say 0.048, "higher"
        ([0.9, 0.95, 1.0], [0.0, 0.0], 1 / 10, False, False),
        ([0.5, 0.5, 0.6], [0.5, 0.4, 0.5], None, False, True),  # ties across the groups
        ([0.99, 0.98, 0.97], [0.5], 1 / 4, False, False),  # a baseline with one finished seed
        ([0.5], [0.4, 0.3, 0.6], 1 / 2, False, False),
    ],
)
def test_the_rank_sum_decision_is_exact_with_ties(x, y, p, higher, decidable):
    decision = rank_sum_decision(np.array(x), np.array(y))
    if p is not None:
        assert decision["p_value"] == pytest.approx(p)
    assert decision["p_value"] == pytest.approx(_rank_sum_p(x, y))
    assert decision["smallest_p"] == pytest.approx(1 / math.comb(len(x) + len(y), len(x)))
    assert (decision["higher"], decision["decidable"]) == (higher, decidable)


def test_report_statistics_match_hand_computation(tmp_path):
    sweep = tmp_path / "runs"
    rng = np.random.default_rng(0)
    scores = {}
    for env_id in ("MiniGrid-MemoryS7-v0", "shelm/RandomMaze-v0"):
        for agent, centre in (("cnn", 0.5), ("helm", 0.6)):
            values = [round(float(v), 4) for v in rng.uniform(centre - 0.2, centre + 0.2, 8)]
            scores[env_id, agent] = values
            for seed, value in enumerate(values, start=1):
                _fake_run(sweep, env_id, agent, seed, value)
    _fake_run(sweep, "MiniGrid-MemoryS7-v0", "lstm", 1, 0.9, steps=2000)  # unfinished: left out
    rows = read_metrics(sweep / "MiniGrid-MemoryS7-v0__lstm__s1")
    (sweep / "MiniGrid-MemoryS7-v0__lstm__s1" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows[:5])
    )

    numbers = _report(sweep, tmp_path, "--reps", "500")
    assert numbers["no_run"] == []  # a plain folder of runs: no sweep.json to plan from
    assert numbers["finished"] == 32 and [u["name"] for u in numbers["unfinished"]] == [
        "MiniGrid-MemoryS7-v0__lstm__s1"
    ]
    table = {(row["env"], row["agent"]): row for row in numbers["table"]}
    for (env_id, agent), values in scores.items():
        row = table[env_id, agent]
        assert row["scores"] == pytest.approx(values)
        assert row["iqm"] == pytest.approx(_iqm(values))
        assert row["ci"][0] < row["iqm"] < row["ci"][1]
        assert min(values) <= row["ci"][0] and row["ci"][1] <= max(values)
    for agent in ("cnn", "helm"):
        pooled = scores["MiniGrid-MemoryS7-v0", agent] + scores["shelm/RandomMaze-v0", agent]
        assert table["all envs", agent]["iqm"] == pytest.approx(_iqm(pooled))

    comparisons = {(c["env"], c["memory"], c["baseline"]): c for c in numbers["comparisons"]}
    assert set(comparisons) == {(env, "helm", "cnn") for env in ("MiniGrid-MemoryS7-v0", "shelm/RandomMaze-v0")} | {
        ("all envs", "helm", "cnn")
    }
    per_env = []
    for env_id in ("MiniGrid-MemoryS7-v0", "shelm/RandomMaze-v0"):
        x, y = scores[env_id, "helm"], scores[env_id, "cnn"]
        wins = sum((a > b) + 0.5 * (a == b) for a in x for b in y) / (len(x) * len(y))
        per_env.append(wins)
        c = comparisons[env_id, "helm", "cnn"]
        assert c["probability_of_improvement"] == pytest.approx(wins)
        assert c["ci"][0] <= wins <= c["ci"][1]
        assert c["p_value"] == pytest.approx(_rank_sum_p(x, y))
        assert c["higher"] == (c["p_value"] <= 0.05)  # an exact test at level 0.05 rejects at p <= 0.05
        assert c["scores"] == [8, 8] and c["smallest_p"] == pytest.approx(1 / math.comb(16, 8)) and c["decidable"]
    overall = comparisons["all envs", "helm", "cnn"]
    assert overall["probability_of_improvement"] == pytest.approx(np.mean(per_env))
    assert overall["scores"] == [16, 16]  # each seed's score on each of the two envs


def test_report_fills_only_its_marked_region_and_refuses_an_unmarked_file(tmp_path, capsys):
    sweep = tmp_path / "runs"
    for seed in (1, 2):
        _fake_run(sweep, ENV, "cnn", seed, 0.25 * seed)
    planned = [f"{ENV}__cnn__s1", f"{ENV}__cnn__s2", f"{ENV}__cnn__s3"]  # seed 3 has not started
    resumed = [f"{ENV}__cnn__s2"]  # a later invocation for one seed leaves seed 3 still owed
    (sweep / "sweep.json").write_text(json.dumps({"invocations": [{"trials": planned}, {"trials": resumed}]}))
    page = tmp_path / "results.md"
    begin, end = markers("runs")
    other = "\n".join(markers("other")) + "\n"  # another sweep's region stays as it is
    page.write_text(f"# Results\n\nhand-written claims\n\n{begin}\nold numbers\n{end}\n\nmore text\n{other}")
    assert main(["report", str(sweep), "--out", str(page), "--figures", str(tmp_path / "fig"), "--reps", "200"]) == 0
    text = page.read_text()
    assert text.startswith("# Results\n\nhand-written claims\n\n" + begin) and text.endswith(
        f"{end}\n\nmore text\n{other}"
    )
    assert "old numbers" not in text and f"| {ENV} | cnn | 2 | 0.375" in text
    assert "](fig/runs-curves.png)" in text and (tmp_path / "fig" / "runs-final.png").is_file()
    assert f"Planned, with no run here yet: {ENV}__cnn__s3" in text
    assert json.loads((tmp_path / "fig" / "runs-report.json").read_text())["no_run"] == [f"{ENV}__cnn__s3"]

    unmarked = tmp_path / "notes.md"
    unmarked.write_text("my notes\n")
    capsys.readouterr()
    assert main(["report", str(sweep), "--out", str(unmarked)]) == 2
    assert "has no '<!-- shelm report runs: begin -->'" in capsys.readouterr().err
    assert unmarked.read_text() == "my notes\n"
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (sweep / "sweep.json").write_text(json.dumps({"invocations": [{"agents": ["cnn"]}]}))  # no trial list
    assert main(["report", str(sweep), "--out", str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep.json' is damaged; move it away" in err
    assert f"| {ENV} | cnn | 2 | 0.375" in page.read_text()  # the page keeps its last report


def test_a_sweep_parent_releases_the_models_it_loaded_to_check_its_trials(tmp_path, tiny_llama_with_tokenizer_dir):
    from shelm.memory.caches import cached_language_model

    lm = str(tiny_llama_with_tokenizer_dir)
    argv = ["sweep", "--agents", "helm", "--envs", ENV, "--seeds", "1", "--steps", str(BATCH), "--out", str(tmp_path)]
    assert main([*argv, *SETS, "--set", f"lm={lm}", "--set", "mem_len=8"]) == 0
    assert [r["global_step"] for r in read_metrics(tmp_path / f"{ENV}__helm__s1")] == [BATCH]
    assert cached_language_model.cache_info().currsize == 0


def test_two_sweep_folders_report_as_one_with_their_variants_apart(tmp_path):
    """A task's agents run in two sweeps (here shelm at two LM depths, beside cnn): one table, told apart by label."""
    full, cut = tmp_path / "memory", tmp_path / "memory-L2"
    for seed in (1, 2, 3):
        _fake_run(full, ENV, "cnn", seed, 0.5)
        _fake_run(full, ENV, "shelm", seed, 0.7 + 0.1 * seed)
        config, applied = resolve_config(ENV, "shelm", {"seed": seed, "total_steps": 1000, "lm_layers": 2})
        run_dir = cut / f"{ENV}__shelm__s{seed}"  # the same trial name as in the other folder
        run_dir.mkdir(parents=True)
        save_run_config(run_dir, config, applied)
        for step in range(100, 1001, 100):
            append_metrics(run_dir, {"global_step": step, "success_rate": 0.2 if step > 900 else 0.0})
    out = tmp_path / "report.md"
    assert main(["report", str(full), str(cut), "--out", str(out), "--reps", "200"]) == 0
    numbers = json.loads((tmp_path / "memory-report.json").read_text())
    assert numbers["sweeps"] == [str(full), str(cut)] and numbers["finished"] == 9
    rows = {row["agent"]: row for row in numbers["table"] if row["env"] == ENV}
    assert sorted(rows) == ["cnn", "shelm (symbolic oracle)", "shelm (symbolic oracle, lm_layers=2)"]
    assert rows["shelm (symbolic oracle, lm_layers=2)"]["iqm"] == pytest.approx(0.2)
    assert rows["shelm (symbolic oracle)"]["scores"] == pytest.approx([0.8, 0.9, 1.0])
    assert f"Sweeps `{full}`, `{cut}`: 9 finished trials" in out.read_text()
    # An ablation: the full-depth shelm against the cut one, named as a baseline beside cnn.
    argv = ["report", str(full), str(cut), "--out", str(out), "--reps", "200"]
    assert main([*argv, "--baseline", "shelm (symbolic oracle, lm_layers=2)"]) == 0
    comparisons = {
        (c["memory"], c["baseline"]): c
        for c in json.loads((tmp_path / "memory-report.json").read_text())["comparisons"]
        if c["env"] == ENV
    }
    full_shelm, cut_shelm = "shelm (symbolic oracle)", "shelm (symbolic oracle, lm_layers=2)"
    assert sorted(comparisons) == [(full_shelm, "cnn"), (full_shelm, cut_shelm)]
    assert comparisons[full_shelm, cut_shelm]["probability_of_improvement"] == 1.0
    against_cut = comparisons[full_shelm, cut_shelm]
    assert against_cut["p_value"] == pytest.approx(1 / 20) and against_cut["higher"]  # exact, though the 0.2s tie


def test_sweep_folders_of_the_same_name_are_told_apart_by_their_parents(tmp_path):
    """Two sweeps published as evidence/memory and normalized/memory: their owed trials are named so a reader knows
    which folder owes them."""
    published, normalized = tmp_path / "evidence" / "memory", tmp_path / "normalized" / "memory"
    for sweep, agent in ((published, "cnn"), (normalized, "lstm")):
        for seed in (1, 2):
            _fake_run(sweep, ENV, agent, seed, 0.5)
        planned = [f"{ENV}__{agent}__s{seed}" for seed in (1, 2, 3)]
        (sweep / "sweep.json").write_text(json.dumps({"invocations": [{"trials": planned}]}))
    out = tmp_path / "report.md"
    assert main(["report", str(published), str(normalized), "--out", str(out), "--reps", "200"]) == 0
    owed = [f"evidence/memory/{ENV}__cnn__s3", f"normalized/memory/{ENV}__lstm__s3"]
    assert json.loads((tmp_path / "memory-report.json").read_text())["no_run"] == owed
    assert "4 finished trials, 2 planned with no run here yet" in out.read_text()
    assert sweep_labels([published]) == [""]
    assert sweep_labels([tmp_path / "a" / "x", tmp_path / "b" / "y"]) == ["x", "y"]


def test_a_baseline_that_is_no_agent_of_the_report_is_refused(tmp_path, capsys):
    for seed in (1, 2):
        _fake_run(tmp_path / "runs", ENV, "cnn", seed, 0.5)
    assert main(["report", str(tmp_path / "runs"), "--baseline", "lstm", "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--baseline 'lstm' is no finished agent of the report; its agents are: cnn" in err
    assert not (tmp_path / "r.md").exists()
