"""Did the agent ever see the cue? A measurement that tells a memory failure from an exploration failure on
MiniGrid's Memory tasks.

MiniGrid-Memory starts the agent at a random cell of the hallway, facing the far end: unless it starts in the
start room's first column, the cue (the key or ball in the start room) is behind it. An agent that walks straight
to the end never sees the cue, and no memory can then do better than a guess. This script plays a trained run's
policy and records, per episode, whether the cue's cell was ever in the agent's view (MiniGrid's own `in_view`),
where the agent started, and whether the episode succeeded; it prints the success rate of the episodes that saw
the cue and of those that did not.

    python experiments/cue_sightings.py runs/evidence/memory-s11-L2/MiniGrid-MemoryS11-v0__shelm__s1 --episodes 100
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shelm.acting import EnvLoop, EpisodeTracker, Transition
from shelm.agents.policy import Actor
from shelm.envs import EnvSettings, make_vec_env, success_rule
from shelm.envs.minigrid import sees_cue
from shelm.evaluate import EVAL_SEED_OFFSET
from shelm.files import write_json_atomic
from shelm.info_keys import MEMORY_CUE
from shelm.ppo import load_policy
from shelm.runs import checkpoint_step


def one_env_loop(run_dir: Path, greedy: bool) -> tuple[Any, Any, EnvLoop, int]:
    """The run's policy acting in one env of its task on evaluation seeds: (envs, the MiniGrid world, the loop,
    the seed to reset it with)."""
    config, policy, _ = load_policy(run_dir)
    envs = make_vec_env(EnvSettings.from_config(config), 1)
    seed = config.seed + EVAL_SEED_OFFSET
    actor = Actor(policy, 1, torch.Generator(device=policy.device).manual_seed(seed), greedy=greedy)
    return (
        envs,
        envs.envs[0].unwrapped,
        EnvLoop(envs, actor, EpisodeTracker(1, None, success_rule(config.env_id))),
        seed,
    )


@dataclass(frozen=True)
class Watched:
    """One step of a policy in a Memory task, with where its episode has seen the cue so far."""

    index: int  # the step's observation, counted from the reset's (0); the memory is stepped once per observation
    cue_in_view: bool  # whether the cue's cell was in view in that observation
    last_sighting: int | None  # the index of the episode's latest observation with the cue in view (this one too)
    start_x: int  # the agent's column at the episode's first observation
    transition: Transition

    @property
    def cue(self) -> int:
        """The episode's cue object (a MiniGrid object index), as the environment reports it in the step's info."""
        return int(np.asarray(self.transition.infos[MEMORY_CUE]).reshape(-1)[0])


def watch(loop: EnvLoop, world: Any, seed: int) -> Iterator[Watched]:
    """Reset the one-env loop with `seed` and step it for as long as the caller reads, noting the cue's sightings.
    The env starts its next episode by itself when one ends, so the caller's loop only counts and stops."""
    loop.reset(seed)
    last_sighting, start_x = None, int(world.agent_pos[0])
    for index in itertools.count():
        cue_in_view = sees_cue(world)
        if cue_in_view:
            last_sighting = index
        transition = loop.step()
        yield Watched(index, cue_in_view, last_sighting, start_x, transition)
        if transition.done[0]:
            last_sighting, start_x = None, int(world.agent_pos[0])


def sightings(run_dir: Path, episodes: int, greedy: bool) -> list[dict]:
    """Per episode: saw the cue, the start column, success, length."""
    envs, world, loop, seed = one_env_loop(run_dir, greedy)
    rows: list[dict] = []
    try:
        for watched in watch(loop, world, seed):
            for finished in watched.transition.finished:
                saw = watched.last_sighting is not None
                rows.append(
                    {"saw_cue": saw, "start_x": watched.start_x, "success": finished.success, "length": finished.length}
                )
            if len(rows) >= episodes:
                break
    finally:
        envs.close()
    return rows


def rate(success: np.ndarray, mask: np.ndarray) -> str:
    """The success rate of the episodes in `mask`, with their number."""
    return f"{success[mask].mean():.2f} ({mask.sum()})" if mask.any() else "- (0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--greedy", action="store_true", help="arg-max actions (default: sampled, as in training)")
    parser.add_argument("--json", type=Path, help="also write every episode's row here")
    args = parser.parse_args()
    everything = {}
    print("| run | step | episodes | saw the cue | success when seen | success when not seen |")
    print("|---|---|---|---|---|---|")
    for run_dir in args.run_dirs:
        rows = sightings(run_dir, args.episodes, args.greedy)
        everything[str(run_dir)] = rows
        saw = np.array([r["saw_cue"] for r in rows])
        success = np.array([r["success"] for r in rows], dtype=float)
        step = checkpoint_step(run_dir, "latest")
        seen, unseen = rate(success, saw), rate(success, ~saw)
        print(f"| {run_dir.name} | {step:,} | {len(rows)} | {saw.mean():.2f} | {seen} | {unseen} |")
    if args.json:
        write_json_atomic(args.json, everything)


if __name__ == "__main__":
    main()
