"""MiniGrid and BabyAI, observed as the papers did: the agent's partial view rendered in RGB.

With the default tile size of 8 pixels the 7x7-cell view becomes a 56x56x3 uint8 image. The symbolic view
of the same cells (object, colour, state per cell, as MiniGrid encodes them) travels in
`info["symbolic_view"]`: SHELM's symbolic retriever reads the objects in view from it.

The episode's mission text (BabyAI's instruction) travels in `info["mission"]`: a language memory can read it.

The RGB view is drawn by `PartialRGBView`, which produces MiniGrid's own `RGBImgPartialObsWrapper` image bit for
bit at a fraction of its cost (MiniGrid recomputes the view and copies its tiles one by one in Python, which
dominates the step time of these environments).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from shelm.envs.registry import Suite, gym_make
from shelm.envs.registry import paper_row as _row
from shelm.envs.wrappers import TextsIntoInfo
from shelm.info_keys import MEMORY_CUE, MISSION, SYMBOLIC_VIEW

PREFIXES = ("MiniGrid-", "BabyAI-")


def handles(env_id: str) -> bool:
    return env_id.startswith(PREFIXES)


def env_ids() -> list[str]:
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if handles(k))


# MiniGrid draws its agent in the middle of the view's bottom row, facing up (direction index 3).
POV_AGENT_DIR = 3


class SymbolicViewInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copies MiniGrid's symbolic partial view [view, view, 3] (uint8) into the info of every reset and step."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, SYMBOLIC_VIEW: obs["image"].copy()}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, SYMBOLIC_VIEW: obs["image"].copy()}


class MemoryCueInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Puts the cue of MiniGrid's Memory task into the info of every reset and step: MiniGrid's object index of
    what lies in the start room (a key or a ball), which the object at the end of the hallway must match.

    Only the oracle-memory control reads it; it is the environment's state, which no learning agent is given.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        world = self.env.unwrapped
        self._cue = world.grid.get(*cue_cell(world)).encode()[0]
        return obs, {**info, MEMORY_CUE: self._cue}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, MEMORY_CUE: self._cue}


def cue_cell(world: Any) -> tuple[int, int]:
    """Where MiniGrid's Memory task puts its cue: the start room's first column, in the row above the hallway."""
    return 1, world.height // 2 - 1


def sees_cue(world: Any) -> bool:
    """Whether the cue's cell of MiniGrid's Memory task is inside the agent's view (MiniGrid's `in_view`: the view's
    square, walls in between or not)."""
    return bool(world.in_view(*cue_cell(world)))


def has_memory_cue(env: gym.Env) -> bool:
    """Whether `env` is MiniGrid's Memory task, whose cue `MemoryCueInfo` can read."""
    from minigrid.envs.memory import MemoryEnv

    return isinstance(env.unwrapped, MemoryEnv)


class PartialRGBView(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """The agent's partial view as a uint8 [view * tile, view * tile, 3] image, identical to what MiniGrid's
    `ImgObsWrapper(RGBImgPartialObsWrapper(env, tile_size))` returns, drawn from the symbolic view.

    MiniGrid draws every cell of the view as a tile that depends only on the cell's `encode()` triple, on whether
    the agent is drawn there and on whether the cell is visible (highlighted); its own tile cache is keyed on
    exactly that. The symbolic view carries all of it: an invisible cell encodes as "unseen" and is drawn as an
    empty, unhighlighted tile; a visible one carries its object's triple ("empty" for no object, the carried object
    on the agent's cell) and is highlighted; the agent always sits at (view // 2, view - 1). So this wrapper keeps
    an atlas of tiles indexed by (agent drawn here, type, colour, state) and assembles each frame with a single
    numpy gather. A triple it has not seen yet is drawn by MiniGrid itself: the wrapper asks the env for the
    objects in view and lets `Grid.render_tile` draw their tiles, so every pixel in the atlas is MiniGrid's.
    A frame whose symbolic view does not match the world (a wrapper below changed it) is MiniGrid's own render.
    This relies on no object encoding as "unseen" or "empty", which MiniGrid's own objects never do.
    """

    def __init__(self, env: gym.Env, tile_size: int = 8):
        gym.utils.RecordConstructorArgs.__init__(self, tile_size=tile_size)
        super().__init__(env)
        self.tile_size = tile_size
        view = env.observation_space["image"].shape[0]
        self.view = view
        self.observation_space = gym.spaces.Box(0, 255, (view * tile_size, view * tile_size, 3), np.uint8)
        # Whether the agent is drawn at each cell of the view, indexed [x, y] like the symbolic view.
        self._agent_here = np.zeros((view, view), dtype=np.intp)
        self._agent_here[view // 2, view - 1] = 1
        # Tile slot of every (agent drawn, type, colour, state) key, -1 where not drawn yet; grows with the keys.
        self._slots = np.full((2, 0, 0, 0), -1, dtype=np.intp)
        self._bounds = np.zeros(3, dtype=np.intp)
        # Every pixel row of every tile, [slot * tile + row, tile * 3]: a frame is one gather of these rows.
        self._rows = np.zeros((0, tile_size * 3), dtype=np.uint8)
        # Frame pixel row (y, r) at cell column x reads row r of the tile at cell (x, y).
        self._row_in_tile = np.arange(tile_size, dtype=np.intp)[None, :, None]

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        symbolic = observation["image"]
        slots = self._lookup(symbolic)
        if slots is None:
            self._draw_tiles_in_view()
            slots = self._lookup(symbolic)
            if slots is None:  # the symbolic view no longer matches the env's state: let MiniGrid draw the frame
                return self.unwrapped.get_frame(tile_size=self.tile_size, agent_pov=True)
        rows = slots.T[:, None, :] * self.tile_size + self._row_in_tile
        size = self.view * self.tile_size
        return np.take(self._rows, rows, axis=0).reshape(size, size, 3)

    def _lookup(self, symbolic: np.ndarray) -> np.ndarray | None:
        """Atlas slot of every cell [x, y], or None when some cell's tile is not in the atlas yet."""
        if not (symbolic < self._bounds).all():
            return None
        slots = self._slots[self._agent_here, symbolic[..., 0], symbolic[..., 1], symbolic[..., 2]]
        return None if (slots < 0).any() else slots

    def _draw_tiles_in_view(self) -> None:
        """Adds to the atlas the tile, drawn by MiniGrid, of every cell the agent sees now."""
        from minigrid.core.grid import Grid

        grid, visible = self.unwrapped.gen_obs_grid()
        symbolic = grid.encode(visible)
        self._grow(symbolic.reshape(-1, 3).max(axis=0).astype(np.intp) + 1)
        for x in range(self.view):
            for y in range(self.view):
                agent_here = self._agent_here[x, y]
                key = (agent_here, *symbolic[x, y])
                if self._slots[key] >= 0:
                    continue
                tile = Grid.render_tile(
                    grid.get(x, y),
                    agent_dir=POV_AGENT_DIR if agent_here else None,
                    highlight=bool(visible[x, y]),
                    tile_size=self.tile_size,
                )
                # MiniGrid's tiles are float averages of supersampled pixels, truncated where MiniGrid copies
                # them into its uint8 frame; storing them the same way keeps its exact pixel values.
                pixels = np.empty((self.tile_size, self.tile_size * 3), dtype=np.uint8)
                pixels[:] = tile.reshape(self.tile_size, self.tile_size * 3)
                self._slots[key] = len(self._rows) // self.tile_size
                self._rows = np.concatenate([self._rows, pixels])

    def _grow(self, bounds: np.ndarray) -> None:
        """Widens the slot table to cover types, colours and states below `bounds`."""
        bounds = np.maximum(self._bounds, bounds)
        if (bounds > self._bounds).any():
            slots = np.full((2, *bounds), -1, dtype=np.intp)
            types, colours, states = self._bounds
            slots[:, :types, :colours, :states] = self._slots
            self._slots, self._bounds = slots, bounds


def make(
    env_id: str, tile_size: int = 8, render_mode: str | None = None, env_kwargs: dict[str, Any] | None = None
) -> gym.Env:
    import minigrid  # noqa: F401  (registers the ids)

    env = gym_make(env_id, render_mode, env_kwargs)
    if has_memory_cue(env):
        env = MemoryCueInfo(env)
    return PartialRGBView(SymbolicViewInfo(TextsIntoInfo(env, (MISSION,))), tile_size=tile_size)


# The papers' settings per (task, agent), from the authors' published configs of HELM, HELMv2 and SHELM.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("MiniGrid-DoorKey-5x5-v0", "cnn"): _row(5e-5, 0.005, "none", 64, 500_000),
    ("MiniGrid-DoorKey-5x5-v0", "lstm"): _row(3e-4, 0.05, "none", 32, 500_000),
    ("MiniGrid-DoorKey-6x6-v0", "cnn"): _row(1e-4, 0.001, "none", 64, 500_000),
    ("MiniGrid-DoorKey-6x6-v0", "lstm"): _row(5e-5, 0.01, "none", 64, 500_000),
    ("MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "cnn"): _row(3e-4, 0.001, "none", 64, 500_000),
    ("MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "lstm"): _row(3e-4, 0.05, "none", 128, 500_000),
    ("MiniGrid-KeyCorridorS3R1-v0", "cnn"): _row(1e-5, 0.005, "none", 64, 500_000),
    ("MiniGrid-KeyCorridorS3R1-v0", "lstm"): _row(5e-5, 0.05, "none", 64, 500_000),
    ("MiniGrid-MemoryS11-v0", "cnn"): _row(5e-5, 0.01, "none", 256, 2_000_000),
    ("MiniGrid-MemoryS11-v0", "lstm"): _row(5e-5, 0.001, "none", 128, 2_000_000),
    ("MiniGrid-RedBlueDoors-6x6-v0", "cnn"): _row(5e-5, 0.05, "linear", 256, 500_000),
    ("MiniGrid-RedBlueDoors-6x6-v0", "lstm"): _row(5e-5, 0.05, "linear", 64, 500_000),
    ("MiniGrid-Unlock-v0", "cnn"): _row(5e-5, 0.01, "none", 64, 500_000),
    ("MiniGrid-Unlock-v0", "lstm"): _row(5e-5, 0.01, "none", 128, 500_000),
    # HELM: the reference always used mem_len 511 whatever its configs said; shelm honours the configs.
    ("MiniGrid-DoorKey-5x5-v0", "helm"): _row(1e-4, 0.005, "none", 32, 500_000, mem_len=255),
    ("MiniGrid-DoorKey-6x6-v0", "helm"): _row(3e-4, 0.01, "none", 128, 500_000, mem_len=255),
    ("MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "helm"): _row(3e-4, 0.005, "none", 64, 500_000, mem_len=63),
    ("MiniGrid-KeyCorridorS3R1-v0", "helm"): _row(3e-4, 0.05, "none", 32, 500_000, mem_len=255),
    ("MiniGrid-MemoryS11-v0", "helm"): _row(1e-4, 0.005, "none", 128, 2_000_000, mem_len=15),
    ("MiniGrid-RedBlueDoors-6x6-v0", "helm"): _row(3e-4, 0.05, "linear", 128, 500_000, mem_len=511),
    ("MiniGrid-Unlock-v0", "helm"): _row(3e-4, 0.01, "none", 64, 500_000, mem_len=255),
    # HELMv2 and SHELM. shelm's mem_len counts environment steps and SHELM's window holds mem_len * topk
    # positions, so the reference's SHELM position counts (e.g. 1021 = 255 * 4 + 1) become steps here.
    ("MiniGrid-DoorKey-5x5-v0", "helmv2"): _row(3e-4, 0.005, "none", 32, 500_000, mem_len=255),
    ("MiniGrid-DoorKey-6x6-v0", "helmv2"): _row(3e-4, 0.01, "none", 128, 500_000, mem_len=255),
    ("MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "helmv2"): _row(1e-4, 0.005, "none", 64, 500_000, mem_len=63),
    ("MiniGrid-KeyCorridorS3R1-v0", "helmv2"): _row(5e-4, 0.05, "none", 32, 500_000, mem_len=255),
    ("MiniGrid-MemoryS11-v0", "helmv2"): _row(3e-4, 0.005, "none", 128, 2_000_000, mem_len=15),
    ("MiniGrid-RedBlueDoors-6x6-v0", "helmv2"): _row(3e-4, 0.05, "linear", 128, 500_000, mem_len=511),
    ("MiniGrid-Unlock-v0", "helmv2"): _row(1e-4, 0.01, "none", 64, 500_000, mem_len=255),
    ("MiniGrid-DoorKey-5x5-v0", "shelm"): _row(1e-4, 0.005, "none", 32, 500_000, mem_len=255, topk=2),
    ("MiniGrid-DoorKey-6x6-v0", "shelm"): _row(5e-4, 0.01, "none", 128, 500_000, mem_len=255, topk=2),
    ("MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "shelm"): _row(1e-4, 0.005, "none", 64, 500_000, mem_len=63, topk=4),
    ("MiniGrid-KeyCorridorS3R1-v0", "shelm"): _row(5e-5, 0.05, "none", 32, 500_000, mem_len=255, topk=4),
    ("MiniGrid-MemoryS11-v0", "shelm"): _row(5e-4, 0.005, "none", 128, 2_000_000, mem_len=15, topk=1),
    ("MiniGrid-RedBlueDoors-6x6-v0", "shelm"): _row(5e-4, 0.05, "linear", 128, 500_000, mem_len=512, topk=1),
    ("MiniGrid-Unlock-v0", "shelm"): _row(5e-5, 0.01, "none", 64, 500_000, mem_len=255, topk=2),
}

SUITE = Suite(
    "minigrid",
    handles=handles,
    ids=env_ids,
    make=make,
    install_hint="core dependency",
    presets=PRESETS,
    frames_sized_by="minigrid_tile_size",
    info_keys=(SYMBOLIC_VIEW, MISSION),
)
