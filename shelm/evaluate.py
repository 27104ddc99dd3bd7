"""Evaluation of a trained run on fresh seeds: greedy (arg-max) and sampled actions, optional video."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from shelm.acting import EnvLoop, EpisodeResult, EpisodeTracker, summarize
from shelm.agents.policy import Policy
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, episode_step_limit, make_env, make_vec_env, success_rule
from shelm.envs.perturbations import Perturbation, Perturber
from shelm.errors import ShelmError
from shelm.ppo import ppo_actor
from shelm.progress import PlayProgress, cap_text
from shelm.runs import load_run_config
from shelm.trainers import MakeActor, trainer_of

MODES = ("greedy", "sampled")
# Evaluation seeds start far from the training seeds (seed + env index + resume offsets).
EVAL_SEED_OFFSET = 1_000_000_000


def load_actors(run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, MakeActor, dict[str, Any]]:
    """The run's config, a maker of actors playing its checkpoint, and the checkpoint's trainer state, from the
    trainer that trained it."""
    return trainer_of(load_run_config(run_dir).agent).load_actors(run_dir, checkpoint)


def run_episodes(
    policy: Policy | MakeActor,
    config: TrainConfig,
    episodes: int,
    greedy: bool,
    seed: int,
    record: bool = False,
    perturbation: Perturbation | None = None,
    max_episode_steps: int | None = None,
    progress: PlayProgress | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Play `episodes` episodes spread evenly over up to 8 envs (so no env's short episodes dominate), the
    agent seeing its observations through `perturbation` if given. `policy` is a PPO policy, or a maker of the
    actors of another trainer's run (`load_actors`). An episode that reaches `max_episode_steps` ends there as
    truncated; the statistics count such episodes under `capped`. `progress` is told every step.

    Returns the statistics and, with `record`, the frames of env 0's episodes (its full render where the
    env can render, else its observations).
    """
    n_envs = min(episodes, 8)
    targets = np.array([episodes // n_envs + (i < episodes % n_envs) for i in range(n_envs)])
    render_mode = "rgb_array" if record else None
    envs = make_vec_env(EnvSettings.from_config(config, max_episode_steps), n_envs, render_mode=render_mode)
    frames: list[np.ndarray] = []
    actor = ppo_actor(policy, n_envs, seed, greedy) if isinstance(policy, Policy) else policy(n_envs, seed, greedy)
    tracker = EpisodeTracker(n_envs, None, success_rule(config.env_id))
    loop = EnvLoop(envs, actor, tracker, view=Perturber(perturbation or Perturbation(), seed))
    counted: list[EpisodeResult] = []
    done_count = np.zeros(n_envs, dtype=np.int64)
    try:
        loop.reset(seed)
        while (done_count < targets).any():
            if record and done_count[0] < targets[0]:
                frame = envs.envs[0].render()
                frames.append(frame if isinstance(frame, np.ndarray) else actor.obs[0].cpu().numpy())
            new = []
            for episode in loop.step().finished:
                if done_count[episode.env] < targets[episode.env]:
                    new.append(episode)
                    done_count[episode.env] += 1
            counted += new
            if progress is not None:
                progress.update(n_envs, len(new), sum(reached_cap(e.length, max_episode_steps) for e in new))
    finally:
        envs.close()
    capped = sum(reached_cap(e.length, max_episode_steps) for e in counted)
    stats = summarize((e.episode_return, e.length, e.success) for e in counted)
    return {"episodes": len(counted), **stats, "capped": capped}, frames


def reached_cap(length: int, max_episode_steps: int | None) -> bool:
    """Whether an episode of `length` steps ended at the step cap (as truncated) rather than by the env's rule."""
    return max_episode_steps is not None and length >= max_episode_steps


def step_cap(max_episode_steps: int | None) -> int | None:
    """The per-episode step cap of `--max-episode-steps N`: N, None for 0 or None (the env's own limit); a negative
    N is refused in one line."""
    if max_episode_steps is None or max_episode_steps == 0:
        return None
    if max_episode_steps < 0:
        raise ShelmError(
            f"--max-episode-steps {max_episode_steps}: give a number of steps >= 1 (0: no cap but the env's own)"
        )
    return max_episode_steps


def own_step_limit(config: TrainConfig) -> int | None:
    """The most steps an episode of the run's env lasts by the env's own rule, where it tells
    (`shelm.envs.episode_step_limit`): what a command without a step cap may have to play through."""
    env = make_env(EnvSettings.from_config(config))
    try:
        return episode_step_limit(env)
    finally:
        env.close()


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """MP4 through imageio's ffmpeg plugin; a GIF beside it if that is unavailable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # imageio warns when it pads frames to a multiple of 16
            imageio.mimsave(path.with_suffix(".mp4"), frames, fps=fps)
        return path.with_suffix(".mp4")
    except (ImportError, ValueError, RuntimeError, OSError):
        imageio.mimsave(path.with_suffix(".gif"), frames, duration=1000 / fps, loop=0)
        return path.with_suffix(".gif")


def evaluate(
    run_dir: Path,
    episodes: int = 20,
    checkpoint: str = "latest",
    seed: int | None = None,
    video: bool = False,
    perturb: str | None = None,
    max_episode_steps: int | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Greedy and sampled evaluation, optionally under an observation perturbation SPEC (see
    `shelm.envs.perturbations`). Top-level numbers are the greedy ones; both are under their mode. Episodes that
    reach `max_episode_steps` end there as truncated (None: the env's own limit) and are counted under `capped`.
    Unless `quiet`, how much it will play and its progress go to stderr (`PlayProgress`)."""
    if episodes < 1:
        raise ShelmError(f"--episodes {episodes}: evaluate at least 1 episode")
    cap = step_cap(max_episode_steps)
    perturbation = Perturbation.parse(perturb)
    config, make_actor, state = load_actors(run_dir, checkpoint)
    progress = PlayProgress("eval", len(MODES) * episodes, cap, quiet)
    if not quiet:
        progress.announce(f"{len(MODES)} modes x {episodes} episodes, {cap_text(cap, own_step_limit(config))}")
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "env_id": config.env_id,
        "agent": config.agent,
        "checkpoint": checkpoint,
        "global_step": state["global_step"],
        "seed": seed,
        "perturbation": perturbation.spec(),
        "max_episode_steps": cap,
    }
    videos = []
    for mode in MODES:
        stats, frames = run_episodes(
            make_actor,
            config,
            episodes,
            greedy=mode == "greedy",
            seed=seed,
            record=video,
            perturbation=perturbation,
            max_episode_steps=cap,
            progress=progress,
        )
        report[mode] = stats
        if video:
            (run_dir / "eval").mkdir(exist_ok=True)
            videos.append(str(write_video(run_dir / "eval" / f"{checkpoint}-{mode}", frames)))
    progress.finish()
    report.update(report["greedy"])
    if video:
        report["videos"] = videos
    return report
