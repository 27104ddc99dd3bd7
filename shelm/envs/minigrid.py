"""MiniGrid and BabyAI, observed as the papers did: the agent's partial view rendered in RGB.

With the default tile size of 8 pixels the 7x7-cell view becomes a 56x56x3 uint8 image.
"""

from __future__ import annotations

import gymnasium as gym

PREFIXES = ("MiniGrid-", "BabyAI-")


def handles(env_id: str) -> bool:
    return env_id.startswith(PREFIXES)


def env_ids() -> list[str]:
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if handles(k))


def make(env_id: str, tile_size: int = 8, render_mode: str | None = None) -> gym.Env:
    import minigrid  # noqa: F401
    from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

    env = gym.make(env_id, render_mode=render_mode)
    return ImgObsWrapper(RGBImgPartialObsWrapper(env, tile_size=tile_size))
