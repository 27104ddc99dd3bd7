"""What runs in the child process that trains DreamerV2 (`python -m shelm.dreamer RUN_DIR [--quiet] [--resume]
[--parent PID]`).

It runs sheeprl on RUN_DIR/sheeprl.yaml (written by `shelm.dreamer.train`) and bridges sheeprl to a shelm run:
- `sheeprl_env`, the env factory sheeprl instantiates, builds shelm's env and scores each finished episode with
  shelm's success rule into this process's `SESSION` (sheeprl steps its envs in this process: `sync_env`);
- `ShelmTensorBoardLogger`, sheeprl's logger, keeps sheeprl's TensorBoard events and turns each of sheeprl's log
  windows into one metrics.jsonl row with PPO's keys (and `shelm/KEY` scalars beside sheeprl's);
- `ShelmCheckpointCallback`, sheeprl's checkpoint callback, keeps sheeprl's last checkpoint (to resume from) and
  writes checkpoints/latest/ beside it: the world model and the actor as safetensors, and trainer.json;
- with `--resume`, sheeprl continues from the checkpoint that checkpoints/latest names (read back with
  `weights_only=True` before sheeprl loads it), and the metrics rows after it are dropped;
- at the end, sheeprl's pickled checkpoints are deleted.
A `ShelmError` ends the process with status 2 and its one line on stderr, which the parent repeats. The process
dies with the one that started it (`--parent`), so that a killed trainer leaves nothing training in its run
directory.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import signal
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
from lightning.fabric import Fabric
from lightning.fabric.loggers import TensorBoardLogger
from safetensors.torch import save_file
from sheeprl.utils.callback import CheckpointCallback

from shelm.acting import summarize
from shelm.config import TrainConfig, parse_obs_resize
from shelm.dreamer import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, SHEEPRL_CONFIG
from shelm.envs import EnvSettings, ObsPreprocessing, make_env, success_rule
from shelm.envs.registry import SuccessRule
from shelm.errors import ShelmError
from shelm.progress import TrainingProgress
from shelm.runs import append_metrics, checkpoint_path, load_run_config, swap_in, truncate_metrics

# sheeprl's metrics of a log window (the others, per episode, come at any step) and their names in a metrics row.
WINDOW_PREFIXES = ("Loss/", "State/", "Grads/", "Params/", "Time/")


def row_key(name: str) -> str:
    """'Loss/world_model_loss' -> 'world_model_loss', 'Grads/actor' -> 'grad_norm_actor'."""
    group, _, key = name.partition("/")
    return f"grad_norm_{key}" if group == "Grads" else key


@dataclass
class Session:
    """What this process trains, and the episodes finished in the run (since its start, also before a resume)."""

    config: TrainConfig
    run_dir: Path
    progress: TrainingProgress
    recent: deque[tuple[float, int, bool]] = field(default_factory=deque)
    episodes: int = 0
    start_step: int = 0
    """The step the run continues from (0 for a new run)."""
    elapsed_before: float = 0.0
    """Seconds the run trained before this process continued it."""
    started: float = field(default_factory=time.perf_counter)
    loggers: list[ShelmTensorBoardLogger] = field(default_factory=list)

    def record(self, episode_return: float, length: int, success: bool) -> None:
        self.recent.append((episode_return, length, success))
        self.episodes += 1

    def elapsed(self) -> float:
        """Seconds the run has trained, in this process and before it."""
        return self.elapsed_before + time.perf_counter() - self.started

    def flush_rows(self) -> None:
        """Write every logger's pending metrics row."""
        for logger in self.loggers:
            logger.flush_row()


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
    settings = EnvSettings(id, tile_size, obs_key, preprocess=ObsPreprocessing(parse_obs_resize(obs_resize)))
    return EpisodeRecorder(make_env(settings), success_rule(id))


class ShelmTensorBoardLogger(TensorBoardLogger):
    """sheeprl's TensorBoard logger, which also writes a metrics row per log window (when the next window's first
    value arrives, and at `flush_row` after training)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pending: dict[str, float] = {}
        self.pending_step: int | None = None
        self.closed: tuple[float, dict[str, float | None], int] = (0.0, {}, 0)
        self.last_step, self.last_time = (SESSION.start_step if SESSION else 0), time.perf_counter()
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
            "time_total": SESSION.elapsed_before + closed - SESSION.started,
        }
        append_metrics(SESSION.run_dir, row)
        for key, value in row.items():
            if key != "global_step" and value is not None and math.isfinite(value):
                self.experiment.add_scalar(f"shelm/{key}", value, step)
        SESSION.progress.update(row)
        self.pending, self.pending_step = {}, None
        self.last_step, self.last_time = step, closed


class ShelmCheckpointCallback(CheckpointCallback):
    """sheeprl's checkpoint callback (keeping its last `keep_last` checkpoints), which then writes checkpoints/latest/
    of the shelm run from the same state: the rows logged so far first, so that the metrics up to the checkpoint's
    step are whole when a killed run resumes from it."""

    def on_checkpoint_coupled(
        self, fabric: Fabric, ckpt_path: str, state: dict[str, Any], replay_buffer: Any = None
    ) -> None:
        if SESSION is not None:
            SESSION.flush_rows()
        super().on_checkpoint_coupled(fabric, ckpt_path, state, replay_buffer)
        if SESSION is not None and fabric.is_global_zero:
            write_checkpoint(SESSION, Path(ckpt_path), state)


def sheeprl_step(ckpt_path: Path) -> int:
    """The policy step of sheeprl's checkpoint `ckpt_STEP_RANK.ckpt`."""
    return int(ckpt_path.name.removeprefix("ckpt_").split("_")[0])


def write_checkpoint(session: Session, ckpt_path: Path, state: dict[str, Any]) -> Path:
    """checkpoints/latest/ (the world model and the actor as safetensors, trainer.json) from sheeprl's checkpoint
    state, swapped in whole; then every older sheeprl checkpoint of the run (a resumed one's) is deleted."""
    config, run_dir = session.config, session.run_dir
    step = sheeprl_step(ckpt_path)
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
        "elapsed_s": session.elapsed(),
        "sheeprl": metadata.version("sheeprl"),
        "sheeprl_checkpoint": str(ckpt_path.resolve().relative_to(run_dir.resolve())),
        "episodes": {"recent": list(session.recent)[-config.stats_window :], "total": session.episodes},
    }
    (staging / "trainer.json").write_text(json.dumps(info, indent=2) + "\n")
    staging.chmod(0o755)
    swap_in(staging, root / "latest")
    for older in (run_dir / "sheeprl").rglob("ckpt_*.ckpt"):
        if older.resolve() != ckpt_path.resolve():
            older.unlink()
    return root / "latest"


@dataclass(frozen=True)
class ResumePoint:
    """Where a killed run continues: sheeprl's checkpoint, and what the run's latest checkpoint kept of its own."""

    sheeprl_checkpoint: Path
    step: int
    elapsed_s: float
    recent: list[tuple[float, int, bool]]
    """The episodes behind the logged statistics (return, length, success), oldest first."""
    episodes: int
    """The episodes finished before it."""


def resume_point(run_dir: Path) -> ResumePoint | None:
    """Where the run in `run_dir` continues from: its latest checkpoint and the sheeprl checkpoint it was written
    from; None where it has no checkpoint yet (it starts from the beginning)."""
    latest = checkpoint_path(run_dir, "latest")
    if latest is None:
        return None
    info = json.loads((latest / "trainer.json").read_text())
    ckpt = run_dir / str(info.get("sheeprl_checkpoint", ""))
    if "sheeprl_checkpoint" not in info or not ckpt.is_file():
        raise ShelmError(
            f"checkpoint '{latest}' keeps no sheeprl training state to continue from; train a new run (--force)"
        )
    try:  # only tensors and numbers: then sheeprl's own loading, which unpickles in full, reads nothing else
        torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds on a file that is not a weights-only checkpoint
        raise ShelmError(f"'{ckpt}' is not a sheeprl checkpoint of tensors ({type(exc).__name__}); retrain") from None
    episodes = info["episodes"]
    recent = [(float(r), int(n), bool(s)) for r, n, s in episodes["recent"]]
    return ResumePoint(ckpt, int(info["global_step"]), float(info["elapsed_s"]), recent, int(episodes["total"]))


def run(run_dir: Path, quiet: bool, resume: bool) -> None:
    """Train the run's DreamerV2 with sheeprl (continuing it from its latest checkpoint with `resume`), then delete
    sheeprl's pickled checkpoints."""
    global SESSION
    from omegaconf import OmegaConf
    from sheeprl.cli import check_configs, run_algorithm
    from sheeprl.utils.utils import dotdict

    config = load_run_config(run_dir)
    cfg = dotdict(OmegaConf.to_container(OmegaConf.load(run_dir / SHEEPRL_CONFIG), resolve=True))
    check_configs(cfg)
    point = resume_point(run_dir) if resume else None
    if resume:
        # sheeprl writes under the run directory as this process names it, wherever the run started from.
        cfg.log_root = str(run_dir)
        truncate_metrics(run_dir, 0 if point is None else point.step)
    if point is not None:
        cfg.checkpoint.resume_from = str(point.sheeprl_checkpoint)
    start = 0 if point is None else point.step
    SESSION = Session(config, run_dir, TrainingProgress(config.total_steps, start, quiet=quiet), start_step=start)
    if point is not None:
        SESSION.recent.extend(point.recent)
        SESSION.episodes, SESSION.elapsed_before = point.episodes, point.elapsed_s
    with SESSION.progress:
        run_algorithm(cfg)
        SESSION.flush_rows()
    for ckpt in (run_dir / "sheeprl").rglob("ckpt_*.ckpt"):
        ckpt.unlink()


def _dies_with(parent: int) -> None:
    """The kernel kills this process when the process `parent` that started it dies (Linux); if it has died already,
    while this one was starting, this one ends now."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shelm.dreamer")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--parent", type=int, help="the process that started this one, which it dies with")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _dies_with(args.parent)
    try:
        run(args.run_dir, args.quiet, args.resume)
    except ShelmError as exc:
        print(f"shelm: error: {exc}", file=sys.stderr)
        return 2
    return 0
