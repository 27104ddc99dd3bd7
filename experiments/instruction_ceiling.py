"""The best success an agent that cannot read the mission can have on the levels of the instruction measurement.

Both levels draw the target uniformly among the room's objects and fail the episode when the agent picks up an
object that does not fit the mission's description of it:
- BabyAI-PickupDistDebug-v0: five objects (keys, balls, boxes), the target described by its type, its colour or
  both, uniformly;
- MiniGrid-Fetch-5x5-N2-v0: two objects (keys, balls), the target described by its colour and type.
An agent that sees the room but not the mission does best by picking up the object most likely to fit: per episode,
the object o maximising P(o fits) = mean over targets t and description kinds s of [o fits desc(t, s)]. This script
averages that maximum over many episodes (the mission the level draws is not used), and also reports the success of
picking an object uniformly at random, for comparison.

    python experiments/instruction_ceiling.py --episodes 5000
    python experiments/instruction_ceiling.py --env MiniGrid-Fetch-5x5-N2-v0 --episodes 5000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

# Each level's ways of describing its target.
DESCRIPTION_KINDS = {
    "BabyAI-PickupDistDebug-v0": ("type", "color", "both"),
    "MiniGrid-Fetch-5x5-N2-v0": ("both",),
}


def fits(obj, target, kind: str) -> bool:
    """Whether `obj` fits the description of `target` by its type, its colour, or both."""
    same_type, same_colour = obj.type == target.type, obj.color == target.color
    return {"type": same_type, "color": same_colour, "both": same_type and same_colour}[kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(DESCRIPTION_KINDS), default="BabyAI-PickupDistDebug-v0")
    parser.add_argument("--episodes", type=int, default=5000)
    args = parser.parse_args()
    import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

    kinds = DESCRIPTION_KINDS[args.env]
    env = gym.make(args.env)
    best, uniform = [], []
    for seed in range(args.episodes):
        env.reset(seed=seed)
        world = env.unwrapped
        objects = [o for o in world.grid.grid if o is not None and o.type in ("key", "ball", "box")]
        chance = np.array([np.mean([fits(o, t, s) for t in objects for s in kinds]) for o in objects])
        best.append(chance.max())
        uniform.append(chance.mean())
    env.close()
    print(
        f"{args.env}, {args.episodes} episodes: an agent blind to the mission succeeds at most {np.mean(best):.3f} "
        f"(the object most likely to fit); an object picked uniformly: {np.mean(uniform):.3f}"
    )


if __name__ == "__main__":
    main()
