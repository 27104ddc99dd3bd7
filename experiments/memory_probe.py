"""Does the memory hold the cue when the agent decides? A linear probe that tells a memory failure from a policy
failure on MiniGrid's Memory tasks.

It plays a trained run's policy (sampled actions, as in training, on evaluation seeds) and keeps, for every
episode, the memory's output at the episode's last step (where the agent steps onto the object it chose),
whether the cue's cell was ever in view before it (MiniGrid's own `in_view`), and the cue itself (the env's
state, `info["memory_cue"]`). It then fits a logistic-regression probe from the memory output to the cue on half
of the episodes that saw the cue and scores it on the other half (and the other way round). Accuracy near 1 means
the memory carries the cue to the decision, so a policy at chance has not learned to read it; near 0.5 means the
memory has lost it. The episodes that never saw the cue are scored by a probe fitted on them the same way: a
control that should sit at 0.5, since nothing in the memory can know the cue.

It also measures how loudly the memory says it, relative to its norm: the share of the output's norm that is
the vector common to all episodes (|mean output| / mean |output|), and the distance between the mean outputs of
key and ball episodes (/ mean |output|), for the episodes that saw the cue and, as a control, those that did not.

Where the memory has lost the cue by the decision, two more numbers say where: the same probe on the memory's
output at the step the cue was last in view (near 1: the memory took the cue in and let it go; near 0.5: the
cue never reached it, so the frozen mapping from frame to LM input does not tell key from ball), and the median
number of steps from that sighting to the decision, to set beside the memory's window (mem_len positions, one
step per position for HELM and HELMv2, top-k per step for SHELM).

    python experiments/memory_probe.py runs/evidence/memory-s11-L2/MiniGrid-MemoryS11-v0__shelm__s1 --episodes 400
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cue_sightings import one_env_loop, watch
from minigrid.core.constants import OBJECT_TO_IDX

from shelm.files import write_json_atomic
from shelm.runs import checkpoint_step


@dataclass
class Episodes:
    """What `last_memories` keeps of each played episode (E of them; M the memory's output width)."""

    memories: np.ndarray  # [E, M] the memory's output at the episode's last step
    at_sighting: np.ndarray  # [E, M] its output at the last step the cue was in view (zeros if never)
    steps_since_sighting: np.ndarray  # [E] steps from that sighting to the last step (-1 if never)
    cues: np.ndarray  # [E] the cue's MiniGrid object index
    seen: np.ndarray  # [E] whether the cue was ever in view
    successes: np.ndarray  # [E]


def last_memories(run_dir: Path, episodes: int) -> Episodes:
    """Play the run's policy for `episodes` episodes and keep the memory's output where the probe reads it."""
    envs, world, loop, seed = one_env_loop(run_dir, greedy=False)
    memories, at_sighting, since, cues, seen, successes = [], [], [], [], [], []
    sighting = None  # the output at the episode's latest sighting of the cue
    try:
        for watched in watch(loop, world, seed):
            step = watched.transition
            output = step.memory_out[0].float().cpu().numpy()
            if watched.cue_in_view:
                sighting = output
            if step.done[0]:
                saw = watched.last_sighting is not None
                memories.append(output)
                at_sighting.append(sighting if saw else np.zeros_like(output))
                since.append(watched.index - watched.last_sighting if saw else -1)
                cues.append(watched.cue)
                seen.append(saw)
                successes.append(step.finished[0].success)
                if len(memories) >= episodes:
                    break
    finally:
        envs.close()
    return Episodes(
        np.stack(memories), np.stack(at_sighting), np.array(since), np.array(cues), np.array(seen), np.array(successes)
    )


def cue_distance(memories: np.ndarray, is_key: np.ndarray) -> float | None:
    """The distance between the mean output of the key episodes and that of the ball episodes (None if either
    has fewer than 5)."""
    if min(is_key.sum(), (~is_key).sum()) < 5:
        return None
    return float(np.linalg.norm(memories[is_key].mean(0) - memories[~is_key].mean(0)))


def relative(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale


def fit_probe(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of an L2-regularised logistic regression of y on x (full-batch L-BFGS)."""
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x @ weights + bias, y)
        value = value + l2 * weights.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    return weights.detach(), bias.detach()


def probe_accuracy(features: np.ndarray, labels: np.ndarray, l2: float = 1e-2, seed: int = 0) -> float:
    """Two-fold cross-validated accuracy of the probe (features standardised on the fitting fold)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    folds = np.array_split(order, 2)
    correct = 0
    for test, train in (folds, folds[::-1]):
        x = torch.as_tensor(features[train], dtype=torch.float64)
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        weights, bias = fit_probe((x - mean) / std, torch.as_tensor(labels[train], dtype=torch.float64), l2)
        x_test = (torch.as_tensor(features[test], dtype=torch.float64) - mean) / std
        predicted = (x_test @ weights + bias > 0).numpy()
        correct += int((predicted == labels[test].astype(bool)).sum())
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(
        "| run | step | episodes | saw the cue | probe accuracy, seen | probe accuracy, not seen (control) "
        "| common share of the norm | key-ball distance, seen | key-ball distance, not seen "
        "| probe accuracy at the last sighting | steps from the last sighting to the decision (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run_dir in args.run_dirs:
        played = last_memories(run_dir, args.episodes)
        memories, seen = played.memories, played.seen
        is_key = played.cues == OBJECT_TO_IDX["key"]  # the cue is a key or a ball: a binary label
        scale = float(np.linalg.norm(memories, axis=1).mean())
        enough_seen, enough_unseen = seen.sum() >= 10, (~seen).sum() >= 10
        row = {
            "run": str(run_dir),
            "episodes": len(played.cues),
            "saw_cue": float(seen.mean()),
            "probe_seen": probe_accuracy(memories[seen], is_key[seen]) if enough_seen else None,
            "probe_not_seen": probe_accuracy(memories[~seen], is_key[~seen]) if enough_unseen else None,
            "success_seen": float(played.successes[seen].mean()) if seen.any() else None,
            "success_not_seen": float(played.successes[~seen].mean()) if (~seen).any() else None,
            "common_share": float(np.linalg.norm(memories.mean(0)) / scale),
            "cue_distance_seen": relative(cue_distance(memories[seen], is_key[seen]), scale),
            "cue_distance_not_seen": relative(cue_distance(memories[~seen], is_key[~seen]), scale),
            "probe_at_sighting": probe_accuracy(played.at_sighting[seen], is_key[seen]) if enough_seen else None,
            "steps_since_sighting_median": float(np.median(played.steps_since_sighting[seen])) if seen.any() else None,
        }
        rows.append(row)
        step = checkpoint_step(run_dir, "latest")
        shown = {k: "-" if v is None else f"{v:.2f}" for k, v in row.items() if isinstance(v, float | None)}
        since = "-" if row["steps_since_sighting_median"] is None else f"{row['steps_since_sighting_median']:.0f}"
        print(
            f"| {run_dir.name} | {step:,} | {len(played.cues)} | {row['saw_cue']:.2f} ({int(seen.sum())}) "
            f"| {shown['probe_seen']} | {shown['probe_not_seen']} | {shown['common_share']} "
            f"| {shown['cue_distance_seen']} | {shown['cue_distance_not_seen']} "
            f"| {shown['probe_at_sighting']} | {since} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, rows)


if __name__ == "__main__":
    main()
