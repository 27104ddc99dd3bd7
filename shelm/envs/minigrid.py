"""MiniGrid and BabyAI, observed as the papers did: the agent's partial view rendered in RGB.

With the default tile size of 8 pixels the 7x7-cell view becomes a 56x56x3 uint8 image. The symbolic view
of the same cells (object, colour, state per cell, as MiniGrid encodes them) travels in
`info["symbolic_view"]`: SHELM's symbolic retriever reads the objects in view from it.
"""

from __future__ import annotations

import gymnasium as gym

PREFIXES = ("MiniGrid-", "BabyAI-")


def handles(env_id: str) -> bool:
    return env_id.startswith(PREFIXES)


def env_ids() -> list[str]:
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if handles(k))


SYMBOLIC_VIEW = "symbolic_view"


class SymbolicViewInfo(gym.Wrapper):
    """Copies MiniGrid's symbolic partial view [view, view, 3] (uint8) into the info of every reset and step."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, SYMBOLIC_VIEW: obs["image"].copy()}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, SYMBOLIC_VIEW: obs["image"].copy()}


def make(env_id: str, tile_size: int = 8, render_mode: str | None = None) -> gym.Env:
    import minigrid  # noqa: F401
    from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

    env = gym.make(env_id, render_mode=render_mode)
    return ImgObsWrapper(RGBImgPartialObsWrapper(SymbolicViewInfo(env), tile_size=tile_size))
