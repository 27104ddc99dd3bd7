"""The best success an agent that cannot read the mission can have on BabyAI-PickupDistDebug-v0.

The level puts five objects in one room, draws the target uniformly among them and describes it by its type, its
colour or both (uniformly); picking up an object that does not fit the description fails the episode. An agent
that sees the room but not the mission does best by picking up the object most likely to fit: per episode, the
object o maximising P(o fits) = sum over targets t and description kinds s of 1/5 * 1/3 * [o fits desc(t, s)].
This script averages that maximum over many episodes (the mission drawn by the level itself is not used), and
also reports the success of picking an object uniformly at random, for comparison.

    python experiments/instruction_ceiling.py --episodes 5000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

ENV_ID = "BabyAI-PickupDistDebug-v0"


def fits(obj, target, kind: str) -> bool:
    """Whether `obj` fits the description of `target` by its type, its colour, or both."""
    same_type, same_colour = obj.type == target.type, obj.color == target.color
    return {"type": same_type, "color": same_colour, "both": same_type and same_colour}[kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=5000)
    args = parser.parse_args()
    import minigrid  # noqa: F401  (registers the BabyAI ids)

    env = gym.make(ENV_ID)
    best, uniform = [], []
    for seed in range(args.episodes):
        env.reset(seed=seed)
        world = env.unwrapped
        objects = [o for o in world.grid.grid if o is not None and o.type in ("key", "ball", "box")]
        chance = np.array(
            [np.mean([fits(o, t, s) for t in objects for s in ("type", "color", "both")]) for o in objects]
        )
        best.append(chance.max())
        uniform.append(chance.mean())
    env.close()
    print(
        f"{ENV_ID}, {args.episodes} episodes: an agent blind to the mission succeeds at most {np.mean(best):.3f} "
        f"(the object most likely to fit); an object picked uniformly: {np.mean(uniform):.3f}"
    )


if __name__ == "__main__":
    main()
