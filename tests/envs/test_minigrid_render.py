"""shelm's MiniGrid RGB view must be MiniGrid's own `ImgObsWrapper(RGBImgPartialObsWrapper(...))` image, bit for
bit: both wrappers run in lockstep on the same seeds and actions through thousands of steps and many episodes,
with a policy that picks up, drops and toggles what is in front of the agent, so that doors open and keys and
balls are carried."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the ids)
import numpy as np
import pytest
from minigrid.core.actions import Actions
from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

from shelm.envs import EnvSettings, make_env
from shelm.envs.minigrid import SYMBOLIC_VIEW, PartialRGBView, SymbolicViewInfo, make

# Symbolic-view codes of the events the policy must provoke where the env allows them.
DOOR, OPEN = 4, 0
CARRIABLE = {5, 6, 7}  # key, ball, box

# env id -> the events a run of it must show: "open door" (an open door in view), "carrying" (an object on the
# agent's cell of the view).
CASES = {
    "MiniGrid-MemoryS11-v0": set(),
    "MiniGrid-KeyCorridorS3R1-v0": {"open door", "carrying"},
    "MiniGrid-DoorKey-6x6-v0": {"open door", "carrying"},
    "MiniGrid-Dynamic-Obstacles-Random-5x5-v0": set(),
    "MiniGrid-LavaCrossingS9N1-v0": set(),
    "MiniGrid-RedBlueDoors-6x6-v0": {"open door"},
    "MiniGrid-Unlock-v0": {"open door", "carrying"},
    "BabyAI-GoToLocal-v0": {"carrying"},
}
STEPS = 600
EPISODE_CAP = 100  # steps before a forced reset, so every run spans several episodes


def act(env: gym.Env, rng: np.random.Generator) -> int:
    """Mostly walks; picks up, toggles and drops what is in front of the agent often enough to change the world."""
    world = env.unwrapped
    front = world.grid.get(*world.front_pos)
    roll = rng.random()
    if front is not None and front.type == "door" and roll < 0.7:
        return Actions.toggle
    if front is not None and front.type in ("key", "ball", "box") and roll < 0.7:
        return Actions.pickup if world.carrying is None or roll < 0.5 else Actions.toggle
    if world.carrying is not None and roll < 0.05:
        return Actions.drop
    if roll < 0.1:
        return int(rng.integers(world.action_space.n))
    return int(rng.choice([Actions.left, Actions.right, Actions.forward, Actions.forward]))


def assert_same_frame(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == reference.dtype == np.uint8
    assert ours.shape == reference.shape
    assert np.array_equal(ours, reference)


def events_in(symbolic: np.ndarray) -> set[str]:
    view = symbolic.shape[0]
    events = set()
    if symbolic[view // 2, view - 1, 0] in CARRIABLE:
        events.add("carrying")
    if ((symbolic[..., 0] == DOOR) & (symbolic[..., 2] == OPEN)).any():
        events.add("open door")
    return events


def lockstep(ours: gym.Env, reference: gym.Env, seed: int, steps: int = STEPS) -> tuple[set[str], int]:
    """Steps both envs with the same actions, comparing every frame; returns the events seen and the episodes."""
    rng = np.random.default_rng(seed)
    events: set[str] = set()
    episodes, length = 1, 0
    frame, info = ours.reset(seed=seed)
    expected, expected_info = reference.reset(seed=seed)
    for _ in range(steps):
        assert_same_frame(frame, expected)
        assert np.array_equal(info[SYMBOLIC_VIEW], expected_info[SYMBOLIC_VIEW])
        events |= events_in(info[SYMBOLIC_VIEW])
        action = act(reference, rng)
        frame, reward, terminated, truncated, info = ours.step(action)
        expected, expected_reward, *ends, expected_info = reference.step(action)
        assert (reward, terminated, truncated) == (expected_reward, *ends)
        length += 1
        if terminated or truncated or length == EPISODE_CAP:
            assert_same_frame(frame, expected)
            events |= events_in(info[SYMBOLIC_VIEW])
            frame, info = ours.reset()
            expected, expected_info = reference.reset()
            episodes, length = episodes + 1, 0
    assert_same_frame(frame, expected)
    return events, episodes


def minigrid_view(env_id: str, tile_size: int, **kwargs: Any) -> gym.Env:
    """MiniGrid's own RGB partial view, wrapped as shelm wrapped it before it drew the view itself."""
    return ImgObsWrapper(RGBImgPartialObsWrapper(SymbolicViewInfo(gym.make(env_id, **kwargs)), tile_size=tile_size))


@pytest.mark.parametrize("tile_size", [8, 5])
@pytest.mark.parametrize("env_id", list(CASES))
def test_frames_are_minigrids_own(env_id: str, tile_size: int):
    events, episodes = lockstep(make(env_id, tile_size=tile_size), minigrid_view(env_id, tile_size), seed=tile_size)
    assert CASES[env_id] <= events
    assert episodes >= 3


@pytest.mark.parametrize(
    "kwargs",
    [{"agent_view_size": 5}, {"agent_view_size": 9, "see_through_walls": True}, {"agent_view_size": 3}],
)
def test_frames_match_for_other_view_sizes_and_see_through_walls(kwargs: dict[str, Any]):
    env_id, tile_size = "MiniGrid-DoorKey-8x8-v0", 6
    ours = PartialRGBView(SymbolicViewInfo(gym.make(env_id, **kwargs)), tile_size=tile_size)
    events, _ = lockstep(ours, minigrid_view(env_id, tile_size, **kwargs), seed=3)
    assert {"open door", "carrying"} <= events


def test_large_tiles_match():
    env_id = "BabyAI-GoToLocal-v0"
    _, episodes = lockstep(make(env_id, tile_size=32), minigrid_view(env_id, 32), seed=0, steps=250)
    assert episodes >= 3


@pytest.mark.parametrize("tile_size", [8, 5])
def test_observation_space_is_unchanged(tile_size: int):
    for env_id in ("MiniGrid-MemoryS11-v0", "BabyAI-GoToLocal-v0"):
        assert (
            make_env(EnvSettings(env_id, tile_size=tile_size)).observation_space
            == minigrid_view(env_id, tile_size).observation_space
        )
    kwargs = {"agent_view_size": 5}
    ours = PartialRGBView(SymbolicViewInfo(gym.make("MiniGrid-DoorKey-6x6-v0", **kwargs)), tile_size=tile_size)
    assert ours.observation_space == minigrid_view("MiniGrid-DoorKey-6x6-v0", tile_size, **kwargs).observation_space


def test_render_mode_passes_through():
    env = make("MiniGrid-DoorKey-6x6-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert np.array_equal(frame, env.unwrapped.get_frame(highlight=True, tile_size=32))


class MisreportedCell(gym.ObservationWrapper):
    """Reports a cell of the symbolic view that is not in the world: a lava tile in a state lava never has."""

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        image = observation["image"].copy()
        image[0, 0] = (9, 0, 200)
        return {**observation, "image": image}


def test_a_symbolic_view_that_disagrees_with_the_world_gets_minigrids_frame():
    env = PartialRGBView(MisreportedCell(gym.make("MiniGrid-DoorKey-6x6-v0")), tile_size=8)
    frame, _ = env.reset(seed=0)
    assert_same_frame(frame, env.unwrapped.get_frame(tile_size=8, agent_pov=True))
    for action in [Actions.left, Actions.forward, Actions.right, Actions.forward]:
        frame, *_ = env.step(action)
        assert_same_frame(frame, env.unwrapped.get_frame(tile_size=8, agent_pov=True))
