"""RandomMaze: a partially observable grid maze that is regenerated on every reset.

The agent must walk to a goal in the bottom-right corner of a maze it has never seen, seeing only a small
egocentric window around itself, so it has to remember where it has been. This follows the RandomMaze
task of the HELM paper (Paischer et al., 2022, "History Compression via Language Models in Reinforcement
Learning"):

- maze side drawn uniformly from 5..25 on every reset, generated with the "random maze with complexity
  and density" algorithm (complexity = density = 0.75), surrounded by outer walls;
- the goal is fixed in the bottom-right interior corner, the agent starts on a random free cell;
- observation: a 9x9x3 RGB crop centred on the agent (one pixel per cell);
- 4 absolute moves;
- reward +1 on reaching the goal (terminal), -1 for bumping into a wall, -0.01 for any other step;
- episodes are truncated after 100 steps (via the registered ``max_episode_steps``).
"""

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from shelm.envs.registry import Suite

ENV_ID = "shelm/RandomMaze-v0"
MAX_EPISODE_STEPS = 100

MIN_SIZE = 5
MAX_SIZE = 25
AGENT_VIEW_SIZE = 4  # cells visible on each side of the agent
VIEW_WIDTH = 2 * AGENT_VIEW_SIZE + 1
RENDER_CELL_PX = 8

FREE_COLOUR = np.array([0, 0, 0], dtype=np.uint8)
WALL_COLOUR = np.array([128, 128, 128], dtype=np.uint8)
GOAL_COLOUR = np.array([0, 255, 0], dtype=np.uint8)
AGENT_COLOUR = np.array([255, 0, 0], dtype=np.uint8)

# (row, col) offsets indexed by action.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

GOAL_REWARD = 1.0
WALL_REWARD = -1.0
STEP_REWARD = -0.01


def generate_maze(size: int, complexity: float, density: float, rng: np.random.Generator) -> np.ndarray:
    """Return a boolean wall grid of shape ``(n, n)`` with ``n = (size // 2) * 2 + 1``.

    Walls are built on even coordinates: each island starts on a random even cell and repeatedly tries
    to extend two cells towards a random even neighbour, only if that neighbour is still empty, also
    filling the cell in between. Since a wall only ever grows into empty cells, walls never close a loop
    and every free cell stays reachable from every other.
    """
    n = (size // 2) * 2 + 1
    walls = np.zeros((n, n), dtype=bool)
    walls[[0, -1], :] = True
    walls[:, [0, -1]] = True

    n_islands = int(density * (n // 2) ** 2)
    n_growth_steps = int(complexity * 5 * (2 * n))
    starts = rng.integers(0, n // 2 + 1, size=(n_islands, 2)) * 2
    for row, col in starts:
        walls[row, col] = True
        picks = rng.random(n_growth_steps)
        for pick in picks:
            neighbours = [
                (row + dr, col + dc)
                for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
                if 0 <= row + dr < n and 0 <= col + dc < n
            ]
            # Once boxed in, the island can never grow again: stop early instead of wasting draws.
            if all(walls[r, c] for r, c in neighbours):
                break
            next_row, next_col = neighbours[int(pick * len(neighbours))]
            if not walls[next_row, next_col]:
                walls[next_row, next_col] = True
                walls[(row + next_row) // 2, (col + next_col) // 2] = True
                row, col = next_row, next_col
    return walls


class RandomMazeEnv(gym.Env):
    """Navigate to the bottom-right corner of a freshly generated maze from a 9x9 egocentric view.

    Actions (absolute moves):

    ====== ======
    action move
    ====== ======
    0      up
    1      down
    2      left
    3      right
    ====== ======

    Observation: ``uint8`` array of shape ``(9, 9, 3)``, the RGB crop of the maze centred on the agent,
    one pixel per cell; cells outside the maze are drawn as wall and the centre pixel is the agent.

    Public attributes (valid after ``reset``), meant for inspection and tests:

    - ``walls``: ``bool`` array ``(n, n)``, True where there is a wall.
    - ``goal_pos``: ``(row, col)`` of the goal, always ``(n - 2, n - 2)``.
    - ``agent_pos``: ``(row, col)`` of the agent; may be assigned to place the agent on a free cell.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, complexity: float = 0.75, density: float = 0.75):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unsupported render_mode {render_mode!r}")
        self.render_mode = render_mode
        self.complexity = complexity
        self.density = density
        self.observation_space = spaces.Box(0, 255, (VIEW_WIDTH, VIEW_WIDTH, 3), np.uint8)
        self.action_space = spaces.Discrete(len(MOVES))

        self.walls = np.ones((0, 0), dtype=bool)
        self.goal_pos = (0, 0)
        self.agent_pos = (0, 0)
        self._padded_rgb = np.zeros((0, 0, 3), dtype=np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        size = int(self.np_random.integers(MIN_SIZE, MAX_SIZE + 1))
        self.walls = generate_maze(size, self.complexity, self.density, self.np_random)
        n = self.walls.shape[0]
        self.goal_pos = (n - 2, n - 2)

        free = np.argwhere(~self.walls)
        free = free[(free != self.goal_pos).any(axis=1)]
        start = free[self.np_random.integers(len(free))]
        self.agent_pos = (int(start[0]), int(start[1]))

        # Drawn once per maze so that each step only slices a crop out of it.
        maze_rgb = np.where(self.walls[..., None], WALL_COLOUR, FREE_COLOUR)
        maze_rgb[self.goal_pos] = GOAL_COLOUR
        pad = AGENT_VIEW_SIZE
        self._padded_rgb = np.tile(WALL_COLOUR, (n + 2 * pad, n + 2 * pad, 1))
        self._padded_rgb[pad:-pad, pad:-pad] = maze_rgb
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        dr, dc = MOVES[int(action)]
        target = (self.agent_pos[0] + dr, self.agent_pos[1] + dc)
        # The outer wall guarantees that target is inside the grid.
        if self.walls[target]:
            reward, terminated = WALL_REWARD, False
        else:
            self.agent_pos = target
            terminated = target == self.goal_pos
            reward = GOAL_REWARD if terminated else STEP_REWARD
        return self._observation(), reward, terminated, False, {"is_success": terminated}

    def _observation(self) -> np.ndarray:
        # Padded coordinates are shifted by AGENT_VIEW_SIZE, so the crop starts at the agent position.
        row, col = self.agent_pos
        obs = self._padded_rgb[row : row + VIEW_WIDTH, col : col + VIEW_WIDTH].copy()
        obs[AGENT_VIEW_SIZE, AGENT_VIEW_SIZE] = AGENT_COLOUR
        return obs

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'.")
            return None
        pad = AGENT_VIEW_SIZE
        image = self._padded_rgb[pad:-pad, pad:-pad].copy()
        image[self.agent_pos] = AGENT_COLOUR
        return np.repeat(np.repeat(image, RENDER_CELL_PX, axis=0), RENDER_CELL_PX, axis=1)


if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="shelm.envs.random_maze:RandomMazeEnv",
        max_episode_steps=MAX_EPISODE_STEPS,
    )


SUITE = Suite(
    "random_maze",
    handles=lambda env_id: env_id == ENV_ID,
    ids=lambda: [ENV_ID],
    # The papers did not normalise RandomMaze's rewards and trained it for 2M steps, whatever the agent.
    task_presets={ENV_ID: {"norm_reward": False, "total_steps": 2_000_000}},
)
