"""Training speed of dreamerv2 (sheeprl's DreamerV2, the dreamer extra) beside shelm's cnn, lstm and shelm
(lm_layers=2) agents, on one task, in one process run: the same machine, the same torch thread count.

Each agent trains through `shelm train` (the path users take) into a temporary folder. The table gives the wall
time of the whole command (start-up included), the overall steps per second, and the steady rate between the first
and the last metrics row (DreamerV2 logs a row every `--dreamer-learning-starts` steps, the first after its
random-play prefill and pre-training, so its steady rate is the learning phase's; a budget of a single row gives
nan). Printed as markdown.

    python experiments/dreamer_bench.py                              # the measured budgets (minutes)
    python experiments/dreamer_bench.py --ppo-steps 2048 --dreamer-steps 600 --dreamer-learning-starts 200  # a check
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from shelm.cli import main
from shelm.dreamer import DREAMER
from shelm.runs import read_metrics
from shelm.trainers import trainer_of

AGENTS = {
    "cnn": [],
    "lstm": [],
    "shelm": ["--set", "lm_layers=2"],
    "dreamerv2": [],
}


def bench(agent: str, settings: list[str], steps: int, args: argparse.Namespace, root: Path) -> dict[str, float]:
    run_dir = root / agent
    argv = ["train", "--env", args.env, "--agent", agent, "--steps", str(steps), "--seed", "1", "--quiet"]
    argv += ["--n-envs", str(args.n_envs), "--run-dir", str(run_dir), "--set", f"torch_threads={args.threads}"]
    started = time.perf_counter()
    code = main([*argv, *settings])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{agent}: shelm train exited with {code}")
    rows = read_metrics(run_dir)
    first, last = rows[0], rows[-1]
    span = last["time_total"] - first["time_total"]
    steady = (last["global_step"] - first["global_step"]) / span if span > 0 else float("nan")
    return {"steps": last["global_step"], "wall": wall, "overall": last["global_step"] / wall, "steady": steady}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MiniGrid-MemoryS11-v0")
    parser.add_argument("--ppo-steps", type=int, default=20_480, help="steps of cnn, lstm and shelm")
    parser.add_argument("--dreamer-steps", type=int, default=4_000, help="steps of dreamerv2")
    parser.add_argument("--dreamer-learning-starts", type=int, default=1_000, help="dreamerv2's random-play prefill")
    parser.add_argument("--n-envs", type=int, default=16, help="environments of every agent")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every agent")
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma-separated subset")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="dreamer-bench-") as tmp:
        for agent in args.agents.split(","):
            settings = AGENTS[agent]
            steps = args.ppo_steps
            if trainer_of(agent) is DREAMER:
                starts = args.dreamer_learning_starts  # its first row then closes the prefill and pre-training
                settings = [
                    *settings,
                    "--set",
                    f"dreamer_learning_starts={starts}",
                    "--set",
                    f"dreamer_log_every={starts}",
                ]
                steps = args.dreamer_steps
            results[agent] = bench(agent, settings, steps, args, Path(tmp))
    machine = platform.processor() or platform.machine()
    print(f"\n{args.env}, {args.n_envs} envs, {args.threads} torch thread(s), {machine}, {os.cpu_count()} cores\n")
    print("| agent | steps | wall s | steps/s overall | steps/s steady |")
    print("|---|---:|---:|---:|---:|")
    for agent, r in results.items():
        print(f"| {agent} | {r['steps']:,} | {r['wall']:.1f} | {r['overall']:.1f} | {r['steady']:.1f} |")


if __name__ == "__main__":
    main_bench()
