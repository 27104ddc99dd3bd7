"""A uniform random policy's episodes on one task: the chance level that docs/results.md sets beside trained agents.

    python experiments/random_policy.py procgen/maze-memory --envs 16 --steps 4000
    python experiments/random_policy.py MiniWorld-Sign-v0 --envs 1 --steps 1600

Episodes are counted as the trainer counts them (`EpisodeTracker`): only those that end within the steps.
"""

from __future__ import annotations

import argparse

import numpy as np

from shelm.acting import EpisodeTracker
from shelm.envs import EnvSettings, make_vec_env, success_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id")
    parser.add_argument("--envs", type=int, default=16, help="parallel copies (default 16)")
    parser.add_argument("--steps", type=int, default=4000, help="steps per copy (default 4000)")
    parser.add_argument("--seed", type=int, default=123, help="env and action seed (default 123)")
    args = parser.parse_args()

    envs = make_vec_env(EnvSettings(args.env_id), args.envs)
    rng = np.random.default_rng(args.seed)
    tracker = EpisodeTracker(args.envs, args.envs * args.steps, success_rule(args.env_id))
    try:
        envs.reset(seed=args.seed)
        for _ in range(args.steps):
            actions = rng.integers(envs.single_action_space.n, size=args.envs)
            _, rewards, terminated, truncated, infos = envs.step(actions)
            tracker.update(rewards, terminated | truncated, infos)
    finally:
        envs.close()
    returns, lengths, successes = (np.asarray(x, dtype=np.float64) for x in zip(*tracker.recent, strict=True))
    print(
        f"{args.env_id}: {args.envs} envs x {args.steps} steps, seed {args.seed}: {len(returns)} episodes, "
        f"{int(successes.sum())} successes (rate {successes.mean():.3f}), return mean {returns.mean():.3f}, "
        f"negative return {np.mean(returns < 0):.3f}, length mean {lengths.mean():.2f}"
    )


if __name__ == "__main__":
    main()
