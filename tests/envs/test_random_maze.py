import subprocess
import sys
import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from shelm.envs.random_maze import (
    AGENT_COLOUR,
    ENV_ID,
    FREE_COLOUR,
    GOAL_COLOUR,
    RENDER_CELL_PX,
    WALL_COLOUR,
    RandomMazeEnv,
    generate_maze,
)

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
MOVES = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}


def reachable_free_cells(walls: np.ndarray, start: tuple[int, int]) -> int:
    seen = {start}
    queue = deque([start])
    while queue:
        row, col = queue.popleft()
        for dr, dc in MOVES.values():
            nxt = (row + dr, col + dc)
            if not walls[nxt] and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return len(seen)


def test_check_env_passes() -> None:
    # Warnings as errors: check_env reports most problems as warnings only.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID).unwrapped)
        check_env(gym.make(ENV_ID, render_mode="rgb_array").unwrapped)


def test_spaces() -> None:
    env = gym.make(ENV_ID)
    assert env.observation_space == gym.spaces.Box(0, 255, (9, 9, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.spec.max_episode_steps == 100


def test_same_seed_same_trajectory() -> None:
    actions = [0, 3, 1, 1, 2, 3, 3, 0, 1, 2] * 5
    env_a, env_b = RandomMazeEnv(), RandomMazeEnv()
    for seed in (0, 7, 123):
        obs_a, _ = env_a.reset(seed=seed)
        obs_b, _ = env_b.reset(seed=seed)
        np.testing.assert_array_equal(env_a.walls, env_b.walls)
        assert env_a.agent_pos == env_b.agent_pos
        np.testing.assert_array_equal(obs_a, obs_b)
        for action in actions:
            step_a, step_b = env_a.step(action), env_b.step(action)
            np.testing.assert_array_equal(step_a[0], step_b[0])
            assert step_a[1:] == step_b[1:]
            if step_a[2]:
                break


def test_different_seeds_different_mazes() -> None:
    env = RandomMazeEnv()
    mazes = []
    for seed in range(5):
        env.reset(seed=seed)
        mazes.append(env.walls.copy())
    distinct = {(m.shape, m.tobytes()) for m in mazes}
    assert len(distinct) == 5


def test_maze_structure_over_many_seeds() -> None:
    env = RandomMazeEnv()
    sides = set()
    for seed in range(200):
        env.reset(seed=seed)
        walls = env.walls
        n = walls.shape[0]
        sides.add(n)
        assert walls.shape == (n, n) and n % 2 == 1
        assert walls[[0, -1], :].all() and walls[:, [0, -1]].all()
        assert env.goal_pos == (n - 2, n - 2)
        assert not walls[env.goal_pos]
        assert not walls[env.agent_pos]
        assert env.agent_pos != env.goal_pos
        assert reachable_free_cells(walls, env.goal_pos) == int((~walls).sum())
    assert min(sides) == 5 and max(sides) == 25
    assert sides == set(range(5, 26, 2))


def test_generated_mazes_are_not_trivial() -> None:
    rng = np.random.default_rng(0)
    interior_wall_fraction = [generate_maze(25, 0.75, 0.75, rng)[1:-1, 1:-1].mean() for _ in range(20)]
    # Odd-odd cells are never walls (121 of 529 interior cells), so a dense maze sits well above 0.3.
    assert np.mean(interior_wall_fraction) > 0.3
    empty = generate_maze(25, 0.0, 0.0, rng)
    assert not empty[1:-1, 1:-1].any()


def find_free_neighbour(env: RandomMazeEnv, cell: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    for action, (dr, dc) in MOVES.items():
        nxt = (cell[0] + dr, cell[1] + dc)
        if not env.walls[nxt] and nxt != env.goal_pos:
            return action, nxt
    raise AssertionError(f"no free neighbour of {cell}")


def test_wall_bump_costs_one_and_does_not_move() -> None:
    env = RandomMazeEnv()
    env.reset(seed=3)
    env.agent_pos = (1, 1)
    _, reward, terminated, truncated, info = env.step(UP)
    assert reward == -1.0
    assert env.agent_pos == (1, 1)
    assert (terminated, truncated, info["is_success"]) == (False, False, False)
    assert env.step(LEFT)[1] == -1.0
    assert env.agent_pos == (1, 1)


def test_free_move_costs_a_hundredth() -> None:
    env = RandomMazeEnv()
    env.reset(seed=4)
    env.agent_pos = (1, 1)
    action, target = find_free_neighbour(env, (1, 1))
    _, reward, terminated, truncated, info = env.step(action)
    assert reward == pytest.approx(-0.01)
    assert env.agent_pos == target
    assert (terminated, truncated, info["is_success"]) == (False, False, False)


def test_reaching_goal_terminates_with_plus_one() -> None:
    env = RandomMazeEnv()
    for seed in range(10):
        env.reset(seed=seed)
        row, col = env.goal_pos
        # Coming from above or from the left; at least one is free since the goal is connected.
        if not env.walls[row - 1, col]:
            env.agent_pos, action = (row - 1, col), DOWN
        else:
            env.agent_pos, action = (row, col - 1), RIGHT
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == 1.0
        assert terminated is True and truncated is False
        assert info["is_success"] is True
        assert env.agent_pos == env.goal_pos


def test_truncation_at_100_steps() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    env.unwrapped.agent_pos = (1, 1)
    for step in range(1, 101):
        _, reward, terminated, truncated, info = env.step(UP)
        assert reward == -1.0 and not terminated and not info["is_success"]
        assert truncated == (step == 100)


def test_observation_is_egocentric_crop() -> None:
    env = RandomMazeEnv()
    obs, _ = env.reset(seed=5)
    assert obs.shape == (9, 9, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[4, 4], AGENT_COLOUR)

    env.agent_pos = (1, 1)
    obs, reward, *_ = env.step(UP)  # bump into the outer wall: observe from (1, 1)
    assert reward == -1.0
    np.testing.assert_array_equal(obs[4, 4], AGENT_COLOUR)
    # Rows/cols 0..2 lie outside the maze, row/col 3 is the outer wall.
    assert (obs[:4] == WALL_COLOUR).all() and (obs[:, :4] == WALL_COLOUR).all()

    # Every in-maze pixel other than the agent matches the maze.
    n = env.walls.shape[0]
    for i in range(4, 9):
        for j in range(4, 9):
            row, col = i - 3, j - 3
            if (i, j) == (4, 4) or row >= n or col >= n:
                continue
            expected = WALL_COLOUR if env.walls[row, col] else FREE_COLOUR
            if (row, col) == env.goal_pos:
                expected = GOAL_COLOUR
            np.testing.assert_array_equal(obs[i, j], expected)


def test_goal_visible_next_to_agent() -> None:
    env = RandomMazeEnv()
    env.reset(seed=6)
    row, col = env.goal_pos
    # Stand next to the goal and bump into the outer wall to observe from there without moving.
    env.agent_pos = (row, col - 1) if not env.walls[row, col - 1] else (row - 1, col)
    obs, reward, *_ = env.step(DOWN if env.agent_pos[0] == row else RIGHT)
    assert reward == -1.0
    dr, dc = row - env.agent_pos[0], col - env.agent_pos[1]
    np.testing.assert_array_equal(obs[4 + dr, 4 + dc], GOAL_COLOUR)
    # Below and right of the goal is the outer wall.
    np.testing.assert_array_equal(obs[4 + dr + 1, 4 + dc], WALL_COLOUR)
    np.testing.assert_array_equal(obs[4 + dr, 4 + dc + 1], WALL_COLOUR)


def test_render_full_maze() -> None:
    env = RandomMazeEnv(render_mode="rgb_array")
    env.reset(seed=8)
    frame = env.render()
    n = env.walls.shape[0]
    assert frame.shape == (n * RENDER_CELL_PX, n * RENDER_CELL_PX, 3) and frame.dtype == np.uint8
    cells = frame[::RENDER_CELL_PX, ::RENDER_CELL_PX]
    np.testing.assert_array_equal(cells[env.agent_pos], AGENT_COLOUR)
    np.testing.assert_array_equal(cells[env.goal_pos], GOAL_COLOUR)
    wall_pixels = (cells == WALL_COLOUR).all(axis=-1)
    np.testing.assert_array_equal(wall_pixels, env.walls)
    # Each cell is a uniform block.
    block = frame[:RENDER_CELL_PX, :RENDER_CELL_PX]
    assert (block == block[0, 0]).all()


def test_registration_is_idempotent() -> None:
    # gymnasium only warns when an id is registered twice, so turn warnings into errors.
    code = "import importlib, shelm.envs.random_maze as m; importlib.reload(m)"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
    assert gym.spec(ENV_ID).entry_point == "shelm.envs.random_maze:RandomMazeEnv"
