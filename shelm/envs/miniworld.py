"""MiniWorld (optional extra `miniworld`): 3D rooms rendered by OpenGL, observed as 60x80x3 first-person frames.

shelm sets `PYGLET_HEADLESS=True` before the first import, so the frames render off-screen through EGL (software
rendering works on machines without a GPU or display). Asynchronous vectorization must use the `spawn` start
method: a forked child inherits the parent's OpenGL context and hangs (make_vec_env does this). The Sign task
observes a dict (the frame and the goal's index); shelm keeps the frame, as the papers did.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os

import gymnasium as gym

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


def make(env_id: str, render_mode: str | None = None) -> gym.Env:
    # MiniWorld prints its frame-buffer fallbacks ("Falling back to num_samples=4") to stdout, which would break
    # `--json` output; they are not errors.
    with contextlib.redirect_stdout(io.StringIO()):
        env = gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FrameFromDict(env, IMAGE_KEY)
    return env
