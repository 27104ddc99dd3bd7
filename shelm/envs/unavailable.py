"""The papers' suites that no package registry can provide: Avalon and DeepMind Lab (with its Psychlab tasks).

They are registered like any suite so that `shelm envs --suites` lists them as not installed, and asking for one
of their ids says what it would need instead of "unknown env".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from shelm.envs.registry import Suite
from shelm.errors import ShelmError

AVALON_WHY = (
    "Avalon downloads its Godot game-engine binary from GitHub at run time (and pins gym 0.25.2); machines "
    "without internet cannot run it, so shelm does not support it"
)
DMLAB_WHY = (
    "DeepMind Lab (and its Psychlab tasks) has no wheel on PyPI and its Bazel build fetches sources from the "
    "internet; build it from github.com/google-deepmind/lab on a connected machine, then register a gymnasium "
    "wrapper that returns uint8 RGB frames and pass its id"
)


def _names(env_id: str, name: str) -> bool:
    """Whether an id names the suite: it starts with the name or has it as a namespace, in any case. A
    `module:EnvId` id is someone's own wrapper, which gymnasium makes."""
    lowered = env_id.lower()
    return ":" not in env_id and (lowered.startswith(name) or f"/{name}" in lowered)


def _refuse(why: str) -> Callable[[str, int, str | None], NoReturn]:
    """A `Suite.make` that says why the suite's envs cannot be built."""

    def make(env_id: str, tile_size: int, render_mode: str | None) -> NoReturn:
        raise ShelmError(f"env '{env_id}': {why}")

    return make


AVALON = Suite(
    "avalon",
    handles=lambda env_id: _names(env_id, "avalon"),
    ids=list,
    make=_refuse(AVALON_WHY),
    installed=lambda: False,
    install_hint=AVALON_WHY,
)
DMLAB = Suite(
    "dmlab",
    handles=lambda env_id: _names(env_id, "dmlab") or (":" not in env_id and "psychlab" in env_id.lower()),
    ids=list,
    make=_refuse(DMLAB_WHY),
    installed=lambda: False,
    install_hint=DMLAB_WHY,
)
