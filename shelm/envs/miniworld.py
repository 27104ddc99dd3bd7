"""MiniWorld (optional extra `miniworld`): 3D rooms rendered by OpenGL, observed as 60x80x3 first-person frames.

shelm sets `PYGLET_HEADLESS=True` before the first import, so the frames render off-screen through EGL (software
rendering works on machines without a GPU or display). Asynchronous vectorization must use the `spawn` start
method: a forked child inherits the parent's OpenGL context and hangs (`SUITE.async_context` asks for it). The Sign task
observes a dict (the frame and the goal's index); shelm keeps the frame, as the papers did.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from typing import Any

import gymnasium as gym

from shelm.envs.registry import Suite, gym_make
from shelm.envs.registry import paper_row as _row
from shelm.envs.wrappers import FrameFromDict
from shelm.errors import ShelmError

PREFIX = "MiniWorld-"
IMAGE_KEY = "obs"  # the frame's key in the dict observations of tasks that add more (Sign)


def handles(env_id: str) -> bool:
    return env_id.startswith(PREFIX)


def installed() -> bool:
    return importlib.util.find_spec("miniworld") is not None


def register(env_id: str | None = None) -> None:
    """Import miniworld (which registers its ids), rendering headless."""
    os.environ.setdefault("PYGLET_HEADLESS", "True")  # before pyglet is first imported
    try:
        import miniworld  # noqa: F401  (registers the ids)
    except ImportError:
        raise ShelmError(
            f"{f'env {env_id!r}' if env_id else 'MiniWorld'} needs MiniWorld: pip install -e '.[miniworld]'"
        ) from None


def env_ids() -> list[str]:
    register()
    return sorted(k for k in gym.registry if handles(k))


def make(env_id: str, render_mode: str | None = None, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    register(env_id)
    # MiniWorld prints its frame-buffer fallbacks ("Falling back to num_samples=4") to stdout, which would break
    # `--json` output; they are not errors.
    with contextlib.redirect_stdout(io.StringIO()):
        env = gym_make(env_id, render_mode, env_kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FrameFromDict(env, IMAGE_KEY)
    return env


# The papers' settings per (task, agent): the SHELM paper's MiniWorld tasks (its "PickupObjs" is
# MiniWorld-PickupObjects-v0), from the authors' published configs. shelm's mem_len counts environment steps and
# SHELM's window holds mem_len * topk positions, so the reference's SHELM position counts become
# floor(positions / topk) steps here.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("MiniWorld-CollectHealth-v0", "cnn"): _row(5e-4, 0.005, "none", 128, 500_000),
    ("MiniWorld-CollectHealth-v0", "lstm"): _row(1e-4, 0.005, "none", 64, 500_000),
    ("MiniWorld-CollectHealth-v0", "helm"): _row(5e-5, 0.001, "none", 128, 500_000, mem_len=63),
    ("MiniWorld-CollectHealth-v0", "helmv2"): _row(1e-4, 0.001, "none", 128, 500_000, mem_len=63),
    ("MiniWorld-CollectHealth-v0", "shelm"): _row(5e-5, 0.001, "none", 128, 500_000, mem_len=63, topk=2),
    ("MiniWorld-FourRooms-v0", "cnn"): _row(5e-5, 0.01, "none", 128, 500_000),
    ("MiniWorld-FourRooms-v0", "lstm"): _row(5e-5, 0.01, "none", 128, 500_000),
    ("MiniWorld-FourRooms-v0", "helm"): _row(5e-5, 0.005, "none", 128, 500_000, mem_len=255),
    ("MiniWorld-FourRooms-v0", "helmv2"): _row(5e-5, 0.005, "none", 128, 500_000, mem_len=255),
    ("MiniWorld-FourRooms-v0", "shelm"): _row(1e-4, 0.005, "none", 128, 500_000, mem_len=255, topk=4),
    ("MiniWorld-MazeS3Fast-v0", "cnn"): _row(5e-5, 0.05, "none", 128, 500_000),
    ("MiniWorld-MazeS3Fast-v0", "lstm"): _row(5e-5, 0.01, "none", 128, 500_000),
    ("MiniWorld-MazeS3Fast-v0", "helm"): _row(5e-5, 0.05, "none", 128, 500_000, mem_len=255),
    ("MiniWorld-MazeS3Fast-v0", "helmv2"): _row(1e-4, 0.05, "none", 128, 500_000, mem_len=255),
    ("MiniWorld-MazeS3Fast-v0", "shelm"): _row(5e-5, 0.05, "none", 64, 500_000, mem_len=255, topk=1),
    ("MiniWorld-PickupObjects-v0", "cnn"): _row(5e-5, 0.01, "none", 64, 500_000),
    ("MiniWorld-PickupObjects-v0", "lstm"): _row(5e-5, 0.005, "none", 128, 500_000),
    ("MiniWorld-PickupObjects-v0", "helm"): _row(5e-5, 0.001, "none", 64, 500_000, mem_len=511),
    ("MiniWorld-PickupObjects-v0", "helmv2"): _row(5e-5, 0.001, "none", 64, 500_000, mem_len=511),
    ("MiniWorld-PickupObjects-v0", "shelm"): _row(5e-5, 0.001, "none", 64, 500_000, mem_len=511, topk=4),
    ("MiniWorld-PutNext-v0", "cnn"): _row(5e-5, 0.005, "none", 128, 500_000),
    ("MiniWorld-PutNext-v0", "lstm"): _row(3e-4, 0.05, "none", 64, 500_000),
    ("MiniWorld-PutNext-v0", "helm"): _row(5e-5, 0.01, "none", 32, 500_000, mem_len=255),
    ("MiniWorld-PutNext-v0", "helmv2"): _row(5e-4, 0.01, "none", 32, 500_000, mem_len=255),
    ("MiniWorld-PutNext-v0", "shelm"): _row(3e-4, 0.01, "none", 32, 500_000, mem_len=256, topk=1),
    ("MiniWorld-Sign-v0", "cnn"): _row(1e-4, 0.01, "none", 64, 500_000),
    ("MiniWorld-Sign-v0", "lstm"): _row(3e-4, 0.01, "none", 32, 500_000),
    ("MiniWorld-Sign-v0", "helm"): _row(5e-4, 0.01, "none", 64, 500_000, mem_len=31),
    ("MiniWorld-Sign-v0", "helmv2"): _row(5e-4, 0.01, "none", 64, 500_000, mem_len=31),
    ("MiniWorld-Sign-v0", "shelm"): _row(1e-4, 0.01, "none", 64, 500_000, mem_len=31, topk=2),
    ("MiniWorld-TMaze-v0", "cnn"): _row(1e-4, 0.01, "none", 64, 500_000),
    ("MiniWorld-TMaze-v0", "lstm"): _row(5e-5, 0.01, "none", 128, 500_000),
    ("MiniWorld-TMaze-v0", "helm"): _row(1e-4, 0.001, "none", 64, 500_000, mem_len=255),
    ("MiniWorld-TMaze-v0", "helmv2"): _row(1e-4, 0.001, "none", 64, 500_000, mem_len=255),
    ("MiniWorld-TMaze-v0", "shelm"): _row(1e-4, 0.001, "none", 64, 500_000, mem_len=255, topk=4),
    ("MiniWorld-YMaze-v0", "cnn"): _row(1e-4, 0.05, "none", 64, 500_000),
    ("MiniWorld-YMaze-v0", "lstm"): _row(5e-5, 0.01, "none", 64, 500_000),
    ("MiniWorld-YMaze-v0", "helm"): _row(5e-5, 0.005, "none", 64, 500_000, mem_len=255),
    ("MiniWorld-YMaze-v0", "helmv2"): _row(1e-4, 0.005, "none", 64, 500_000, mem_len=255),
    ("MiniWorld-YMaze-v0", "shelm"): _row(1e-4, 0.005, "none", 64, 500_000, mem_len=255, topk=2),
}

SUITE = Suite(
    "miniworld",
    handles=handles,
    ids=env_ids,
    make=lambda env_id, tile_size, render_mode, env_kwargs=None: make(env_id, render_mode, env_kwargs),
    async_context="spawn",  # a forked child would inherit the parent's OpenGL context and hang
    installed=installed,
    install_hint="pip install -e '.[miniworld]'",
    presets=PRESETS,
)
