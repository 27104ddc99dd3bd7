"""Evaluation of a trained run on fresh seeds: greedy (arg-max) and sampled actions, optional video."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch

from shelm.acting import EnvLoop, EpisodeResult, EpisodeTracker, summarize
from shelm.agents import get_agent_spec
from shelm.agents.policy import Actor, Policy, build_policy
from shelm.config import TrainConfig
from shelm.envs import make_vec_env, success_rule
from shelm.envs.perturbations import Perturbation, Perturber
from shelm.errors import ShelmError
from shelm.runs import checkpoint_path, load_checkpoint, load_run_config

MODES = ("greedy", "sampled")
# Evaluation seeds start far from the training seeds (seed + env index + resume offsets).
EVAL_SEED_OFFSET = 1_000_000_000


def load_policy(run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, Policy, dict[str, Any]]:
    """The run's config, its policy with the checkpoint's weights, and the checkpoint's trainer state."""
    config = load_run_config(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if path is None:
        raise ShelmError(f"run '{run_dir}' has no '{checkpoint}' checkpoint yet; train it longer or resume it")
    envs = make_vec_env(config.env_id, 1, "sync", config.minigrid_tile_size, obs_key=config.obs_key)
    shape, n_actions = envs.single_observation_space.shape, int(envs.single_action_space.n)
    envs.close()
    # Evaluation, inspection and the analyses play a few episodes, too few to pay for compiling the LM step.
    playing = dataclasses.replace(config, lm_compile="false") if config.lm_compile == "auto" else config
    policy = build_policy(playing, shape, n_actions)
    state = load_checkpoint(path, config, policy.agent, optimizer=None, memory=policy.memory)
    policy.agent.eval()
    return config, policy, state


MakeActor = Callable[[int, int, bool], Any]
"""(n_envs, seed, greedy) -> an actor for `EnvLoop`: a PPO `Actor`, or another trainer's (`DreamerActor`)."""


def load_actors(run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, MakeActor, dict[str, Any]]:
    """The run's config, a maker of actors playing its checkpoint, and the checkpoint's trainer state, for whichever
    trainer trained it."""
    config = load_run_config(run_dir)
    if get_agent_spec(config.agent).trainer == "dreamer":
        from shelm.dreamer import load_player

        config, player, state = load_player(run_dir, checkpoint)
        return config, player.actor, state
    config, policy, state = load_policy(run_dir, checkpoint)
    return config, lambda n_envs, seed, greedy: ppo_actor(policy, n_envs, seed, greedy), state


def ppo_actor(policy: Policy, n_envs: int, seed: int, greedy: bool) -> Actor:
    """A PPO actor sampling from its own generator seeded with `seed`: evaluation is reproducible."""
    return Actor(policy, n_envs, torch.Generator(device=policy.device).manual_seed(seed), greedy=greedy)


def run_episodes(
    policy: Policy | MakeActor,
    config: TrainConfig,
    episodes: int,
    greedy: bool,
    seed: int,
    record: bool = False,
    perturbation: Perturbation | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Play `episodes` episodes spread evenly over up to 8 envs (so no env's short episodes dominate), the
    agent seeing its observations through `perturbation` if given. `policy` is a PPO policy, or a maker of the
    actors of another trainer's run (`load_actors`).

    Returns the statistics and, with `record`, the frames of env 0's episodes (its full render where the
    env can render, else its observations).
    """
    n_envs = min(episodes, 8)
    targets = np.array([episodes // n_envs + (i < episodes % n_envs) for i in range(n_envs)])
    render_mode = "rgb_array" if record else None
    envs = make_vec_env(config.env_id, n_envs, "sync", config.minigrid_tile_size, render_mode, config.obs_key)
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
            for episode in loop.step().finished:
                if done_count[episode.env] < targets[episode.env]:
                    counted.append(episode)
                    done_count[episode.env] += 1
    finally:
        envs.close()
    return {"episodes": len(counted), **summarize((e.episode_return, e.length, e.success) for e in counted)}, frames


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
) -> dict[str, Any]:
    """Greedy and sampled evaluation, optionally under an observation perturbation SPEC (see
    `shelm.envs.perturbations`). Top-level numbers are the greedy ones; both are under their mode."""
    if episodes < 1:
        raise ShelmError(f"--episodes {episodes}: evaluate at least 1 episode")
    perturbation = Perturbation.parse(perturb)
    config, make_actor, state = load_actors(run_dir, checkpoint)
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "env_id": config.env_id,
        "agent": config.agent,
        "checkpoint": checkpoint,
        "global_step": state["global_step"],
        "seed": seed,
        "perturbation": perturbation.spec(),
    }
    videos = []
    for mode in MODES:
        stats, frames = run_episodes(
            make_actor, config, episodes, greedy=mode == "greedy", seed=seed, record=video, perturbation=perturbation
        )
        report[mode] = stats
        if video:
            (run_dir / "eval").mkdir(exist_ok=True)
            videos.append(str(write_video(run_dir / "eval" / f"{checkpoint}-{mode}", frames)))
    report.update(report["greedy"])
    if video:
        report["videos"] = videos
    return report
