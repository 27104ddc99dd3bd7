"""The one way the benchmarks train: a run of (env, agent, settings) started through the run plan, exactly as
`shelm train` starts one (`shelm.trainers.plan_run`, `RunPlan.start`), into a temporary folder that is deleted
afterwards; what they measure is read from its metrics rows.

Settings go over the paper preset of the (env, agent) pair, as `--set` does; `preset=none` among them starts from
shelm's defaults instead. Only the final checkpoint is written, after the last timed iteration.

The comparisons of training throughput (shelm against another library) also share here how they run their rows and
write their report (`compare_and_report`, over `interleaved_sps`) and what their reports say of the machine
(`load_average`, `bf16_units`, `markdown_table`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shelm.config import TrainConfig
from shelm.files import write_atomic
from shelm.precision import BF16_CPU_FLAGS, cpu_flags
from shelm.runs import read_metrics
from shelm.trainers import plan_run


def training_rows(env_id: str, agent: str, settings: dict[str, Any], command: str) -> tuple[TrainConfig, list[dict]]:
    """The resolved config and the metrics rows (one per PPO iteration) of a run trained in a temporary folder;
    `command` is what its config.json records (the benchmark's name)."""
    plan = plan_run(env_id, agent, {"checkpoint_every": 10**9, **settings})
    with tempfile.TemporaryDirectory(prefix="shelm-benchmark-") as folder:
        plan.start(Path(folder), command=command)
        return plan.config, read_metrics(Path(folder))


def iteration_seconds(config: TrainConfig, rows: list[dict], warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each PPO iteration after the first `warmup` (loading, compiling and caches warming)."""
    return [config.batch_size / row["sps"] for row in rows[warmup:]]


def training_sps(env_id: str, agent: str, settings: dict[str, Any], command: str, warmup: int = 1) -> float:
    """Training environment steps per second over the iterations after the first `warmup`: their steps over their
    summed wall-clock time."""
    config, rows = training_rows(env_id, agent, settings, command)
    seconds = iteration_seconds(config, rows, warmup)
    return len(seconds) * config.batch_size / sum(seconds)


def interleaved_sps(rows: list[Any], repeats: int, warmup: int, iterations: int, batch: int) -> dict[str, list[float]]:
    """Steps per second of every row (anything with `key`, `label` and `measure(warmup, iterations)` returning the
    measured iterations' seconds), the rows run one after the other `repeats` times, so that background load falls
    on all alike; row key -> one figure per repeat."""
    sps: dict[str, list[float]] = {row.key: [] for row in rows}
    for repeat in range(repeats):
        for row in rows:
            durations = row.measure(warmup, iterations)
            sps[row.key].append(batch * len(durations) / sum(durations))
            print(f"[repeat {repeat + 1}/{repeats}] {row.label}: {sps[row.key][-1]:.0f} SPS", file=sys.stderr)
    return sps


def compare_and_report(
    rows: list[Any], args: argparse.Namespace, batch: int, report: Callable[[dict[str, list[float]], list[str]], str]
) -> None:
    """A side-by-side comparison run: the rows timed interleaved (`interleaved_sps` with the command's --repeats,
    --warmup and --iterations), the load average read before and after; `report(sps, load)` printed, and written
    atomically to --out when the command names one."""
    load = [load_average()]
    sps = interleaved_sps(rows, args.repeats, args.warmup, args.iterations, batch)
    load.append(load_average())
    text = report(sps, load)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, text.encode())


def load_average() -> str:
    """The machine's 1, 5 and 15-minute load averages, as a benchmark report prints them beside its figures."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bf16_units() -> str:
    """The CPU's bfloat16 instruction sets (AMX, AVX-512 BF16), or a note that bfloat16 is emulated here; every
    benchmark prints it, since the machine's CPU changes what bfloat16 costs."""
    units = sorted(set(cpu_flags()) & set(BF16_CPU_FLAGS))
    return ", ".join(units) if units else "none (bfloat16 is emulated; shelm's 'auto' precision picks float32)"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines: the header, its rule, then one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]
