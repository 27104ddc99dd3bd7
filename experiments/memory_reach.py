"""How far back does a frozen memory carry the cue? Replays a Memory-task run's episodes through its memory at
other LM depths, to tell a memory that cannot hold the cue from one that could with more of its LM.

`memory_probe.py` can find that a run's memory took the cue in (a probe reads it at the step the cue was last in
view) yet lost it by the decision. That leaves two causes: the cue had left the memory's window, or the frozen LM
does not carry it along the window to its last position. This script separates them and asks whether the LM's
depth matters. It plays the run's policy (sampled actions, evaluation seeds) until it has `--episodes` episodes
that saw the cue, recording every observation (and info) its memory was given. Then, for each `--layers` value
(0 = the whole LM), it builds the run's memory with that many LM blocks, gives it the run's frozen tensors (e.g.
HELM's random projection), replays the recorded steps, and fits the same two-fold logistic-regression probe from
the output at each episode's last step to the cue, on the episodes whose last sighting lies inside the window
(and, as a check that the cue reaches the memory at all, from the output at the sighting itself). `--set`
replays with another memory setting, e.g. `--set beta=1000` for a sharper FrozenHopfield.
The replay at the run's own depth must reproduce the outputs the policy saw: the script prints the largest
difference as a check.

    python experiments/memory_reach.py runs/evidence/memory-s11-L2/MiniGrid-MemoryS11-v0__helm__s1 \
        --episodes 120 --layers 2 0
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from cue_sightings import one_env_loop, watch
from memory_probe import probe_accuracy
from minigrid.core.constants import OBJECT_TO_IDX

from shelm.agents import get_agent_spec
from shelm.config import parse_overrides
from shelm.envs import probe_env
from shelm.errors import ShelmError
from shelm.files import write_json_atomic
from shelm.memory import FrozenMemory
from shelm.runs import load_run_config


class RecordingMemory:
    """A memory that keeps a copy of every (obs, episode_start, info) it is stepped with, and its output."""

    def __init__(self, memory: FrozenMemory, device: torch.device) -> None:
        self.memory = memory
        self.device = device  # where the policy ran it, and where a replay must run to reproduce it
        self.calls: list[tuple[torch.Tensor, torch.Tensor, Mapping[str, Any] | None]] = []
        self.outputs: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        self.calls.append((obs.clone(), episode_start.clone(), copy.deepcopy(info)))
        output = self.memory.step(obs, episode_start, info)
        self.outputs.append(output[0].float().cpu().clone())
        return output


@dataclasses.dataclass
class Episode:
    """One played episode that saw the cue: indices into the recorded calls, and its cue."""

    last: int  # the call of its last step (the decision)
    sighting: int  # the call of the last step the cue was in view
    is_key: bool


def play(run_dir: Path, episodes: int, max_played: int) -> tuple[RecordingMemory, list[Episode]]:
    """Play the run's policy until `episodes` episodes have seen the cue (or `max_played` episodes were played,
    for a policy that seldom looks); record what its memory was given."""
    envs, world, loop, seed = one_env_loop(run_dir, greedy=False)
    policy = loop.actor.policy
    recording = RecordingMemory(policy.memory, policy.device)
    policy.memory = recording
    kept: list[Episode] = []
    played = 0
    try:
        for watched in watch(loop, world, seed):  # watched.index is the recorded call of the step's observation
            if watched.transition.done[0]:
                played += 1
                if watched.last_sighting is not None:
                    kept.append(Episode(watched.index, watched.last_sighting, watched.cue == OBJECT_TO_IDX["key"]))
                if len(kept) >= episodes or played >= max_played:
                    break
    finally:
        envs.close()
    return recording, kept


def replay(recording: RecordingMemory, memory: FrozenMemory) -> torch.Tensor:
    """[calls, M]: `memory`'s outputs for the recorded calls, in order, from an empty memory."""
    memory.reset(1)
    with torch.no_grad():
        return torch.stack([memory.step(obs, start, info)[0].float().cpu() for obs, start, info in recording.calls])


def refuse(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, nothing written."""
    print(f"memory_reach.py: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=120, help="episodes that saw the cue to keep")
    parser.add_argument("--max-played", type=int, default=2000, help="stop after this many episodes in all")
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 0], help="LM depths to replay (0 = all)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a memory setting to replay with instead of the run's (e.g. beta=1000), for every depth",
    )
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        config = load_run_config(args.run_dir)
        overrides = parse_overrides(args.overrides)
    except ShelmError as exc:
        refuse(str(exc))
    if "lm_layers" in overrides:
        refuse("--set lm_layers: the depths to replay are given by --layers, e.g. --layers 2 0")
    recording, kept = play(args.run_dir, args.episodes, args.max_played)
    if len(kept) < 10:
        refuse(f"only {len(kept)} of {args.max_played} played episodes saw the cue; raise --max-played")
    # At a step the LM attends to the current input and the last mem_len positions before it, so a sighting
    # up to `window_steps` steps back is still in view of the memory.
    window = recording.memory.window_steps
    since = np.array([e.last - e.sighting for e in kept])
    inside = since <= window
    labels = np.array([e.is_key for e in kept])
    last = [e.last for e in kept]
    sightings = [e.sighting for e in kept]
    print(
        f"{args.run_dir.name}: {len(kept)} episodes saw the cue; steps from the last sighting to the decision: "
        f"median {np.median(since):.0f}, {inside.mean():.2f} of them inside the {window}-step window"
    )
    print("| LM blocks | probe accuracy at the last sighting | at the decision (sighting inside the window) |")
    print("|---|---|---|")
    spec = get_agent_spec(config.agent)
    probe = probe_env(config)  # what the memory reads of the env (its frames' shape, frames to calibrate on)
    own = torch.stack(recording.outputs)
    rows: list[dict[str, Any]] = []
    for layers in args.layers:
        variant = dataclasses.replace(config, **overrides, lm_layers=layers, lm_compile="false")
        memory = spec.build_memory(variant, probe, recording.device)
        memory.load_state_dict(recording.memory.state_dict())
        outputs = replay(recording, memory)
        row: dict[str, Any] = {"lm_layers": layers}
        if layers == config.lm_layers and not overrides:
            row["difference_from_policy"] = difference = float((outputs - own).abs().max())
            print(f"(replay at the run's own depth: largest difference from the policy's outputs {difference:.2e})")
        row["probe_sighting"] = at_sighting = probe_accuracy(outputs[sightings].numpy(), labels)
        row["probe_decision_inside"] = at_decision = probe_accuracy(outputs[last].numpy()[inside], labels[inside])
        rows.append(row)
        print(f"| {layers or 'all'} | {at_sighting:.2f} | {at_decision:.2f} ({int(inside.sum())} episodes) |")
    if args.out:
        write_json_atomic(
            args.out,
            {
                "run": str(args.run_dir),
                "window_steps": window,
                "overrides": args.overrides,
                "steps_since_sighting": since.tolist(),
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
