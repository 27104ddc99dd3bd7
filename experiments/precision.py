"""Does training the agent in bfloat16 change what it learns? The same task and seeds in both precisions.

    python experiments/precision.py --env MiniGrid-DoorKey-5x5-v0 --agent cnn --steps 100000 --seeds 0 1 2 \\
        --out runs/precision --set preset=none --jobs 2

Each (precision, seed) is an ordinary run under OUT/PRECISION-seedSEED, started through the run plan as `shelm train`
starts one (`shelm.trainers`); a run already complete with the same config is read back instead of trained again. The
markdown printed at the end gives, per precision, each seed's final success_rate and return_mean (the mean of its last 5
metrics rows, each itself a mean over the last `stats_window` episodes), their mean and seed-to-seed range, the
wall-clock steps per second (steps / the trainer's summed iteration time), and whether the bfloat16 mean lies inside the
range of the float32 seeds: if it does, precision moves the result less than the choice of seed does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from shelm.agents import resolve_config
from shelm.config import TrainConfig, parse_overrides
from shelm.runs import load_run_config, read_metrics
from shelm.trainers import plan_run

PRECISIONS = ("float32", "bfloat16")
FINAL_ROWS = 5
METRICS = ("success_rate", "return_mean")


def is_complete(run_dir: Path, config: TrainConfig) -> bool:
    """Whether `run_dir` holds a finished run of exactly `config`."""
    if not (run_dir / "config.json").is_file():
        return False
    rows = read_metrics(run_dir)
    return load_run_config(run_dir) == config and bool(rows) and rows[-1]["global_step"] >= config.total_steps


def train_one(env_id: str, agent: str, overrides: dict[str, Any], precision: str, seed: int, run_dir: Path) -> None:
    """Train one (precision, seed) run into `run_dir` (in a worker process), unless it is already complete; a
    partial or stale run of this experiment there is replaced."""
    plan = plan_run(env_id, agent, {**overrides, "precision": precision, "seed": seed})
    if not is_complete(run_dir, plan.config):
        plan.start(run_dir, force=True)


def final(run_dir: Path) -> dict[str, float]:
    """Final success_rate and return_mean (mean of the last FINAL_ROWS metrics rows) and wall-clock SPS."""
    rows = read_metrics(run_dir)
    last = [row for row in rows[-FINAL_ROWS:] if row["return_mean"] is not None]
    out = {key: sum(row[key] for row in last) / len(last) if last else float("nan") for key in METRICS}
    out["sps"] = rows[-1]["global_step"] / rows[-1]["time_total"]
    return out


def spread(values: list[float], digits: int) -> str:
    return f"{sum(values) / len(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def report(
    command: str, config: TrainConfig, seeds: list[int], results: dict[tuple[str, int], dict[str, float]]
) -> str:
    """The markdown: the command, per-seed rows, and the per-precision summary with the range check."""
    lines = [
        f"`{command}`",
        "",
        f"{config.env_id}, agent {config.agent}, {config.total_steps:,} steps, seeds {', '.join(map(str, seeds))}, "
        f"{config.n_envs} envs x {config.n_steps} steps per rollout, lr {config.lr:g}, "
        f"torch threads {config.torch_threads or 'default'}. Final = mean of the last {FINAL_ROWS} metrics rows "
        f"(each a mean over the last {config.stats_window} episodes); SPS = steps / the trainer's wall-clock time.",
        "",
        "| precision | seed | success_rate | return_mean | SPS |",
        "|---|---|---|---|---|",
    ]
    for precision in PRECISIONS:
        for seed in seeds:
            r = results[precision, seed]
            lines.append(
                f"| {precision} | {seed} | {r['success_rate']:.3f} | {r['return_mean']:.3f} | {r['sps']:.0f} |"
            )
    lines += [
        "",
        "| precision | success_rate mean (min..max) | return_mean mean (min..max) | SPS mean (min..max) |",
        "|---|---|---|---|",
    ]
    for precision in PRECISIONS:
        cells = [spread([results[precision, s][key] for s in seeds], 3) for key in METRICS]
        cells.append(spread([results[precision, s]["sps"] for s in seeds], 0))
        lines.append(f"| {precision} | {' | '.join(cells)} |")
    lines += ["", "| metric | bfloat16 mean within the float32 seeds' range |", "|---|---|"]
    for key in METRICS:
        reference = [results["float32", s][key] for s in seeds]
        mixed = sum(results["bfloat16", s][key] for s in seeds) / len(seeds)
        inside = min(reference) <= mixed <= max(reference)
        lines.append(
            f"| {key} | {'yes' if inside else 'no'} ({mixed:.3f} vs {min(reference):.3f}..{max(reference):.3f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MiniGrid-DoorKey-5x5-v0", help="task (default MiniGrid-DoorKey-5x5-v0)")
    parser.add_argument("--agent", default="cnn", help="agent (default cnn)")
    parser.add_argument("--steps", type=int, default=100_000, help="environment steps per run (default 100000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--out", type=Path, required=True, help="directory of the runs, one per precision and seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config settings")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once (default 1); each gets cores / jobs torch threads"
    )
    args = parser.parse_args()

    overrides = {**parse_overrides(args.set), "total_steps": args.steps}
    if args.jobs > 1:
        overrides.setdefault("torch_threads", max(1, (os.cpu_count() or 1) // args.jobs))
    # Precisions alternate, so runs trained side by side share the machine alike and their SPS compare.
    jobs = [(precision, seed) for seed in args.seeds for precision in PRECISIONS]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(train_one, args.env, args.agent, overrides, p, s, args.out / f"{p}-seed{s}") for p, s in jobs
        ]
        for future in futures:
            future.result()
    results = {(p, s): final(args.out / f"{p}-seed{s}") for p, s in jobs}
    config, _ = resolve_config(args.env, args.agent, {**overrides, "seed": args.seeds[0]})
    print(report(shlex.join(["python", *sys.argv]), config, args.seeds, results))


if __name__ == "__main__":
    main()
