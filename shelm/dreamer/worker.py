"""What runs in the child process that trains DreamerV2 (`python -m shelm.dreamer RUN_DIR [--quiet]`).

It runs sheeprl on RUN_DIR/sheeprl.yaml (written by `shelm.dreamer.train`) and bridges sheeprl to a shelm run:
- `sheeprl_env`, the env factory sheeprl instantiates, builds shelm's env and scores each finished episode with
  shelm's success rule into this process's `SESSION` (sheeprl steps its envs in this process: `sync_env`);
- `ShelmTensorBoardLogger`, sheeprl's logger, keeps sheeprl's TensorBoard events and turns each of sheeprl's log
  windows into one metrics.jsonl row with PPO's keys (and `shelm/KEY` scalars beside sheeprl's);
- at the end, sheeprl's pickled checkpoint (loaded with weights_only=True) becomes checkpoints/latest/ as
  safetensors and JSON, and is deleted.
A `ShelmError` ends the process with status 2 and its one line on stderr, which the parent repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from lightning.fabric.loggers import TensorBoardLogger
from safetensors.torch import save_file

from shelm.acting import summarize
from shelm.config import TrainConfig, parse_obs_resize
from shelm.dreamer import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, SHEEPRL_CONFIG
from shelm.envs import ObsPreprocessing, make_env, success_rule
from shelm.envs.registry import SuccessRule
from shelm.errors import ShelmError
from shelm.progress import TrainingProgress
from shelm.runs import append_metrics, load_run_config

# sheeprl's metrics of a log window (the others, per episode, come at any step) and their names in a metrics row.
WINDOW_PREFIXES = ("Loss/", "State/", "Grads/", "Params/", "Time/")


def row_key(name: str) -> str:
    """'Loss/world_model_loss' -> 'world_model_loss', 'Grads/actor' -> 'grad_norm_actor'."""
    group, _, key = name.partition("/")
    return f"grad_norm_{key}" if group == "Grads" else key


@dataclass
class Session:
    """What this process trains, and the episodes finished since it started."""

    config: TrainConfig
    run_dir: Path
    progress: TrainingProgress
    recent: deque[tuple[float, int, bool]] = field(default_factory=deque)
    episodes: int = 0
    started: float = field(default_factory=time.perf_counter)
    loggers: list[ShelmTensorBoardLogger] = field(default_factory=list)

    def record(self, episode_return: float, length: int, success: bool) -> None:
        self.recent.append((episode_return, length, success))
        self.episodes += 1


SESSION: Session | None = None


class EpisodeRecorder(gym.Wrapper):
    """Scores each finished episode with shelm's success rule (given this env's infos as a batch of one)."""

    def __init__(self, env: gym.Env, success: SuccessRule):
        super().__init__(env)
        self.success = success
        self.episode_return, self.length = 0.0, 0

    def reset(self, **kwargs: Any) -> Any:
        self.episode_return, self.length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        self.length += 1
        if (terminated or truncated) and SESSION is not None:
            batch = {key: np.array([value]) for key, value in info.items() if key == "is_success"}
            infos = {"final_info": {**batch, **({"_is_success": np.array([True])} if batch else {})}}
            SESSION.record(self.episode_return, self.length, self.success(infos, 0, self.episode_return))
        return obs, reward, terminated, truncated, info


def sheeprl_env(
    id: str, tile_size: int, obs_key: str, render_mode: str | None = None, obs_resize: str = "none"
) -> gym.Env:
    """The env factory sheeprl instantiates (`env.wrapper`): shelm's env, its frames resized as the run's
    `obs_resize` says ('none' where a run's sheeprl config predates the setting), its episodes scored into
    `SESSION`."""
    preprocess = ObsPreprocessing(parse_obs_resize(obs_resize))
    return EpisodeRecorder(make_env(id, tile_size, obs_key=obs_key, preprocess=preprocess), success_rule(id))


class ShelmTensorBoardLogger(TensorBoardLogger):
    """sheeprl's TensorBoard logger, which also writes a metrics row per log window (when the next window's first
    value arrives, and at `flush_row` after training)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pending: dict[str, float] = {}
        self.pending_step: int | None = None
        self.closed: tuple[float, dict[str, float | None], int] = (0.0, {}, 0)
        self.last_step, self.last_time = 0, time.perf_counter()
        if SESSION is not None:
            SESSION.loggers.append(self)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        window = {k: float(v) for k, v in metrics.items() if k.startswith(WINDOW_PREFIXES)}
        if not window or step is None:
            return
        if self.pending_step is not None and step != self.pending_step:
            self.flush_row()
        if self.pending_step is None and SESSION is not None:  # the window closes now: its time and episodes
            recent = list(SESSION.recent)[-SESSION.config.stats_window :]
            self.closed = (time.perf_counter(), summarize(recent), SESSION.episodes)
        self.pending_step = step
        self.pending.update({row_key(k): v for k, v in window.items()})

    def flush_row(self) -> None:
        """Write the pending window as a metrics row (PPO's keys first) and its scalars as shelm/KEY."""
        if self.pending_step is None or SESSION is None:
            return
        step, (closed, episodes, count) = self.pending_step, self.closed
        row: dict[str, Any] = {
            "global_step": step,
            "sps": (step - self.last_step) / max(closed - self.last_time, 1e-9),
            **episodes,
            "episodes": count,
            **self.pending,
            "time_total": closed - SESSION.started,
        }
        append_metrics(SESSION.run_dir, row)
        for key, value in row.items():
            if key != "global_step" and value is not None and math.isfinite(value):
                self.experiment.add_scalar(f"shelm/{key}", value, step)
        SESSION.progress.update(row)
        self.pending, self.pending_step = {}, None
        self.last_step, self.last_time = step, closed


def convert_checkpoint(run_dir: Path, config: TrainConfig, elapsed: float) -> Path:
    """sheeprl's last checkpoint -> checkpoints/latest/ (safetensors + trainer.json); sheeprl's files are deleted."""
    found = sorted(
        (run_dir / "sheeprl").rglob("ckpt_*.ckpt"), key=lambda p: int(p.name.removeprefix("ckpt_").split("_")[0])
    )
    if not found:
        raise RuntimeError(f"sheeprl wrote no checkpoint under {run_dir / 'sheeprl'}")
    state = torch.load(found[-1], map_location="cpu", weights_only=True)
    step = int(found[-1].name.removeprefix("ckpt_").split("_")[0])
    root = run_dir / "checkpoints"
    root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".latest."))
    for part in ("world_model", "actor"):
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state[part].items()}
        save_file(tensors, staging / f"{part}.safetensors", metadata={"global_step": str(step)})
    info = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "env_id": config.env_id,
        "agent": config.agent,
        "global_step": step,
        "gradient_steps": int(state["per_rank_gradient_steps"]),
        "elapsed_s": elapsed,
        "sheeprl": metadata.version("sheeprl"),
    }
    (staging / "trainer.json").write_text(json.dumps(info, indent=2) + "\n")
    staging.chmod(0o755)
    os.rename(staging, root / "latest")
    for file in found:
        file.unlink()
    shutil.rmtree(found[-1].parent, ignore_errors=True)
    return root / "latest"


def run(run_dir: Path, quiet: bool) -> None:
    """Train the run's DreamerV2 with sheeprl, then convert its checkpoint."""
    global SESSION
    from omegaconf import OmegaConf
    from sheeprl.cli import check_configs, run_algorithm
    from sheeprl.utils.utils import dotdict

    config = load_run_config(run_dir)
    cfg = dotdict(OmegaConf.to_container(OmegaConf.load(run_dir / SHEEPRL_CONFIG), resolve=True))
    check_configs(cfg)
    progress = TrainingProgress(config.total_steps, 0, quiet=quiet)
    SESSION = Session(config, run_dir, progress)
    with progress:
        run_algorithm(cfg)
        for logger in SESSION.loggers:
            logger.flush_row()
    convert_checkpoint(run_dir, config, time.perf_counter() - SESSION.started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shelm.dreamer")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        run(args.run_dir, args.quiet)
    except ShelmError as exc:
        print(f"shelm: error: {exc}", file=sys.stderr)
        return 2
    return 0
