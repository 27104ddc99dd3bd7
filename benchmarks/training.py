"""The one way the benchmarks train: a run of (env, agent, settings) started through the run plan, exactly as
`shelm train` starts one (`shelm.trainers.plan_run`, `RunPlan.start`), into a temporary folder that is deleted
afterwards; what they measure is read from its metrics rows.

Settings go over the paper preset of the (env, agent) pair, as `--set` does; `preset=none` among them starts from
shelm's defaults instead. Only the final checkpoint is written, after the last timed iteration.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from shelm.config import TrainConfig
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
