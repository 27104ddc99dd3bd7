"""What a trained oracle-memory agent does at MiniGrid-Memory's junction, for each (cue, object above) pair.

At the end of the hallway the agent faces the far wall with one object two cells above it and the other two
cells below; it succeeds by turning towards the one that matches the cue and stepping forward. This script
builds that view for the four combinations of the cue (key or ball) and the object above (key or ball) in the
run's own environment, tells the agent the cue the way `--agent oracle` does (a one-hot of MiniGrid's object
index), and prints the policy's probabilities of turning left (up) and right (down), and the critic's value.

A policy that uses its memory turns up exactly when the cue matches the object above; one that turns the same way
in all four rows, with the same value, is blind to both the cue and the objects.

    python experiments/junction_probe.py runs/evidence/concat-memory-s11/MiniGrid-MemoryS11-v0__oracle__s1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.world_object import Ball, Key

from shelm.envs import EnvSettings, make_env
from shelm.envs.minigrid import PartialRGBView, has_memory_cue
from shelm.memory.oracle import N_OBJECT_TYPES, OracleCueMemory
from shelm.ppo import load_policy

TURN_LEFT, TURN_RIGHT = 0, 1  # MiniGrid's action indices


def junction_frame(env, cue: type, above: type) -> np.ndarray:
    """The frame the agent sees at the junction, facing the far wall, with `cue` in the start room."""
    env.reset(seed=0)
    world = env.unwrapped
    middle, hallway_end = world.height // 2, world.width - 3
    below = Ball if above is Key else Key
    world.grid.set(1, middle - 1, cue("green"))
    world.grid.set(hallway_end + 1, middle - 2, above("green"))
    world.grid.set(hallway_end + 1, middle + 2, below("green"))
    world.agent_pos, world.agent_dir = np.array((hallway_end + 1, middle)), 0
    view = env
    while not isinstance(view, PartialRGBView):  # the wrapper that draws the agent's view
        view = view.env
    return view.observation(world.gen_obs())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of oracle-memory agents")
    args = parser.parse_args()
    for run_dir in args.runs:
        config, policy, _ = load_policy(run_dir)
        env = make_env(EnvSettings.from_config(config))
        if not isinstance(policy.memory, OracleCueMemory) or not has_memory_cue(env):
            raise SystemExit(f"{run_dir}: this probe reads oracle-memory agents on MiniGrid's Memory tasks")
        print(f"{run_dir} ({config.fusion} fusion)")
        print("| cue | object above | right turn | P(turn up) | P(turn down) | value |")
        print("|---|---|---|---|---|---|")
        for cue in (Key, Ball):
            for above in (Key, Ball):
                device = policy.device
                frame = torch.as_tensor(junction_frame(env, cue, above), device=device)[None]
                cue_index = torch.tensor([OBJECT_TO_IDX[cue("green").type]], device=device)
                told = torch.nn.functional.one_hot(cue_index, N_OBJECT_TYPES).float()
                start = torch.ones(1, dtype=torch.bool, device=device)
                with torch.no_grad():
                    logits, value, _ = policy.act(frame, told, policy.agent.initial_state(1).to(device), start)
                probs = torch.softmax(logits, -1)[0]
                right = "up" if cue is above else "down"
                print(
                    f"| {cue.__name__.lower()} | {above.__name__.lower()} | {right} | {probs[TURN_LEFT]:.2f} "
                    f"| {probs[TURN_RIGHT]:.2f} | {value.item():.2f} |"
                )
        env.close()


if __name__ == "__main__":
    main()
