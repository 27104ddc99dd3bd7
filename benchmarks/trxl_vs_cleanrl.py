"""Training throughput of shelm's `trxl` against CleanRL's own `ppo_trxl.py` (the peer), side by side in one run.

What it measures: environment steps per second of wall time for PPO training (rollout collection and the PPO update
together) on MiniGrid-MemoryS9-v0 with the peer's env and recipe (3x3 views of 28-pixel tiles, 84x84x3 frames; 16
synchronous envs x 256 steps, 3 epochs x 8 minibatches; a Transformer-XL of 2 layers, 4 heads, width 256, memory 64;
float32 on the CPU), for two rows:

  peer        the peer's file run with its own command line by experiments/trxl_parity.py (its harness scores the
              peer's episodes and appends a metrics row after each of the peer's iterations), in a child process
  shelm trxl  shelm's `trxl` with `cleanrl_trxl_settings()` (shelm/experiments/peer_recipes.py: the settings
              trxl_parity.py prints for shelm's side), started as `shelm train` starts a run (benchmarks/training.py)

Both rows run with `--threads` torch intra-op threads; the peer's process also gets OMP_NUM_THREADS set to it.

How: one iteration is one rollout of 16 x 256 = 4096 steps plus its update, and each row's metrics rows time it as
`sps` = 4096 / (its wall-clock seconds):
- shelm: from the start of the iteration (annealing lr and entropy, then the rollout) to the end of the update;
  its metrics, TensorBoard and checkpoint writes fall outside.
- peer: the harness's vector env reads the clock at the first step of every iteration; an iteration lasts from
  there to the first step of the next one (to the envs' close after the last), so it holds the peer's annealing,
  rollout, update and its logging of a few scalars (milliseconds against an iteration of tens of seconds). The
  first iteration's time starts at the envs' first reset.
Neither row times process start-up, imports, or building the model and the envs. Each row trains W warm-up
iterations, then N measured ones (`--warmup`, `--iterations`); a row's SPS is 4096 * N / (the sum of its measured
iterations' seconds). The rows run one after the other, `--repeats` times, so that background load falls on both
alike; the table reports the median over repeats and shelm's median over the peer's.

Get the peer's files (ppo_trxl.py and pom_env.py of cleanrl/ppo_trxl, in a folder outside the repository) and what
they import as experiments/trxl_parity.py says, then, on an otherwise idle machine:

    python benchmarks/trxl_vs_cleanrl.py --peer-script PEER_FOLDER/ppo_trxl.py --repeats 3 --threads 1 \\
        --out /tmp/bench-trxl.md
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

import torch
from training import (
    bf16_units,
    compare_and_report,
    iteration_seconds,
    markdown_table,
    training_rows,
)

from shelm.experiments.peer_recipes import cleanrl_trxl_settings
from shelm.precision import cpu_model
from shelm.runs import read_metrics

ENV_ID = "MiniGrid-MemoryS9-v0"
SEED = 1
REPOSITORY = Path(__file__).resolve().parents[1]
HARNESS = REPOSITORY / "experiments" / "trxl_parity.py"  # runs the peer and writes its metrics rows
SETTINGS = cleanrl_trxl_settings()
BATCH = SETTINGS["n_envs"] * SETTINGS["n_steps"]
TARGET = 1.0  # shelm's trxl at least as fast as the peer

Measure = Callable[[int, int], list[float]]
"""(warmup, iterations) -> wall-clock durations in seconds of the `iterations` measured PPO iterations."""


def measure_peer(peer_script: Path, threads: int, warmup: int, iterations: int) -> list[float]:
    """The peer trained for warmup + iterations iterations by the harness in a child process (its output goes to
    stderr); the measured iterations' seconds from the metrics rows it appended. Exits with the child's exit code
    when it fails: the child has said why."""
    with tempfile.TemporaryDirectory(prefix="shelm-benchmark-peer-") as folder:
        command = [sys.executable, str(HARNESS), "--peer-script", str(peer_script), "--seeds", str(SEED)]
        command += ["--steps", str(BATCH * (warmup + iterations)), "--threads", str(threads), "--out", folder]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}  # its lines as they come
        child = subprocess.run(command, env=env, stdout=2, check=False)
        if child.returncode:
            sys.exit(child.returncode if child.returncode > 0 else 1)  # a negative code: killed by that signal
        [run_dir] = Path(folder).iterdir()  # the harness's one trial
        return [BATCH / row["sps"] for row in read_metrics(run_dir)[warmup:]]


def measure_shelm(threads: int, warmup: int, iterations: int) -> list[float]:
    """Seconds of each measured PPO iteration of shelm's trxl with the peer's recipe, trained in this process
    through the run plan, after `warmup` unmeasured iterations."""
    settings = {
        **SETTINGS,
        "seed": SEED,
        "total_steps": BATCH * (warmup + iterations),
        "torch_threads": threads,
        "device": "cpu",
    }
    config, rows = training_rows(ENV_ID, "trxl", settings, "benchmarks/trxl_vs_cleanrl.py")
    return iteration_seconds(config, rows, warmup)


@dataclass(frozen=True)
class Row:
    """One row of the comparison: its key in the results, its label in the table, and what times its iterations."""

    key: str
    label: str
    measure: Measure


def rows_for(peer_script: Path, threads: int) -> list[Row]:
    """The two rows, peer first, both at `threads` torch threads."""
    return [
        Row("peer", "CleanRL ppo_trxl.py (peer)", partial(measure_peer, peer_script, threads)),
        Row("shelm", "shelm trxl", partial(measure_shelm, threads)),
    ]


def report(args: argparse.Namespace, rows: list[Row], sps: dict[str, list[float]], load: list[str]) -> str:
    """The markdown report: both rows' SPS per repeat and median, the ratio against its target, the command, the
    torch and peer versions, the CPU with its bfloat16 units and the load average around the run."""
    median = {key: statistics.median(values) for key, values in sps.items()}
    ratio = median["shelm"] / median["peer"]
    verdict = "met" if ratio >= TARGET else "not met"
    peer_hash = hashlib.sha256(args.peer_script.read_bytes()).hexdigest()[:12]
    lines = [
        f"Training throughput on {ENV_ID} with CleanRL ppo_trxl's env and recipe (3x3 view, 84x84x3 frames), "
        f"{SETTINGS['n_envs']} sync envs x {SETTINGS['n_steps']} steps, {SETTINGS['n_epochs']} epochs x "
        f"{SETTINGS['n_minibatches']} minibatches, Transformer-XL {SETTINGS['trxl_layers']} layers x "
        f"{SETTINGS['trxl_heads']} heads, width {SETTINGS['trxl_dim']}, memory {SETTINGS['trxl_memory_length']}, "
        f"float32, CPU; {args.warmup} warm-up + {args.iterations} measured iterations per run, {args.repeats} "
        "interleaved repeat(s).",
        "",
        *markdown_table(
            ["row", "SPS (median)", "SPS of each repeat"],
            [[row.label, f"{median[row.key]:.0f}", ", ".join(f"{v:.0f}" for v in sps[row.key])] for row in rows],
        ),
        "",
        *markdown_table(
            ["ratio", "measured", "target"],
            [["shelm trxl / peer", f"{ratio:.2f}x", f"shelm trxl >= {TARGET}x the peer: {verdict}"]],
        ),
        "",
        f"- command: `python {shlex.join(sys.argv)}`",
        f"- torch {torch.__version__}, {args.threads} intra-op thread(s) in both rows; the peer's ppo_trxl.py: "
        f"sha256 {peer_hash}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores, {platform.machine()}); bfloat16 units: {bf16_units()}",
        f"- load average (1, 5, 15 min) at start: {load[0]}; at end: {load[1]}",
    ]
    return "\n".join(lines) + "\n"


def refuse(message: str) -> NoReturn:
    """Bad input: one line on stderr naming it, and exit code 2."""
    print(f"trxl_vs_cleanrl.py: {message}", file=sys.stderr)
    sys.exit(2)


def check(args: argparse.Namespace) -> None:
    """Refuses bad flags in one line each, before anything runs."""
    if not args.peer_script.is_file():
        refuse(f"--peer-script {args.peer_script}: no such file; give the path of CleanRL's ppo_trxl.py")
    if args.peer_script.resolve().is_relative_to(REPOSITORY):
        refuse(f"--peer-script {args.peer_script}: it is inside this repository; keep the peer's files outside it")
    for flag, value, least in [("warmup", args.warmup, 0), ("iterations", args.iterations, 1)]:
        if value < least:
            refuse(f"--{flag} {value}: give {least} or more")
    if args.repeats < 1:
        refuse(f"--repeats {args.repeats}: give 1 or more")
    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= cores:
        refuse(f"--threads {args.threads}: give 1 to {cores} (this machine's cores)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-script", type=Path, required=True, help="CleanRL's ppo_trxl.py, outside the repo")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured PPO iterations per run (default 1)")
    parser.add_argument("--iterations", type=int, default=3, help="measured PPO iterations per run (default 3)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of both rows (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of both rows (default 1)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    check(args)
    torch.set_num_threads(args.threads)
    rows = rows_for(args.peer_script.resolve(), args.threads)
    compare_and_report(rows, args, BATCH, partial(report, args, rows))


if __name__ == "__main__":
    main()
