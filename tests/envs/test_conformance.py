"""Every env as shelm wraps it passes gymnasium's own conformance check (`check_env`), suite by suite, and an env
whose spec gymnasium keeps can be made again from that spec, shelm's wrappers included."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from shelm.envs import EnvSettings, make_env

ENVS = [
    "MiniGrid-MemoryS7-v0",  # minigrid: PartialRGBView(SymbolicViewInfo(MemoryCueInfo(...)))
    "BabyAI-GoToRedBall-v0",
    "shelm/RandomMaze-v0",
    "procgen/maze-memory",
    "MiniWorld-Sign-v0",  # FrameFromDict
    "MortarMayhem-Grid-v0",  # memory_gym: SuccessInfo, FlatDiscrete
    "ale_py:ALE/Pong-v5",  # a plain gymnasium env of another package
    "vizdoom.gymnasium_wrapper:VizdoomBasic-v1",  # a Dict observation of another package, FrameFromDict
]


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """ViZDoom writes its config (_vizdoom.ini, _vizdoom/) into the working directory."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("env_id", ENVS)
def test_the_wrapped_env_passes_gymnasiums_check(env_id):
    env = make_env(EnvSettings(env_id))
    try:
        with warnings.catch_warnings():
            # gymnasium recommends checking the unwrapped env too; shelm's wrapped env is what agents see.
            warnings.filterwarnings("ignore", message=".*is different from the unwrapped version.*")
            check_env(env, skip_render_check=True)
        if env.spec is not None:
            again = gym.make(env.spec)
            assert again.observation_space == env.observation_space and again.action_space == env.action_space
            again.close()
    finally:
        env.close()
