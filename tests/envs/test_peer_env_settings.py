"""The settings that build a peer's env. `env_actions`: an agent given some of an env's actions plays exactly those
env actions, under the env's names for them, in training, evaluation and the Python API. `env_layouts`: episodes
drawn from that many fixed layouts, in an order a seeded reset fixes. Bad values are refused in
tests/test_bad_inputs.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import shelm
from shelm.cli import main
from shelm.envs import EnvSettings, make_env, make_vec_env
from shelm.inspect.trace import action_names
from shelm.ppo import load_policy
from shelm.runs import load_run_config

ENV_ID = "MiniGrid-MemoryS9-v0"


def test_the_agents_action_i_is_the_envs_action_at_i_of_env_actions() -> None:
    subset = make_env(EnvSettings(ENV_ID, actions=(2, 0, 1)))  # forward, left, right
    whole = make_env(EnvSettings(ENV_ID))
    assert subset.action_space.n == 3 and whole.action_space.n == 7
    assert action_names(subset, 3) == ["forward", "left", "right"]
    seen, _ = subset.reset(seed=4)
    expected, _ = whole.reset(seed=4)
    agent_actions = [1, 1, 0, 0, 2, 0, 1, 0]
    for action in agent_actions:
        seen, *_ = subset.step(action)
        expected, *_ = whole.step((2, 0, 1)[action])
        np.testing.assert_array_equal(seen, expected)
    assert subset.unwrapped.agent_pos == whole.unwrapped.agent_pos
    assert subset.unwrapped.agent_dir == whole.unwrapped.agent_dir
    vec = make_vec_env(EnvSettings(ENV_ID, actions=(0, 1, 2)), 2)
    assert vec.single_action_space.n == 3


def test_a_run_given_three_actions_trains_evaluates_and_acts_with_three(tmp_path: Path) -> None:
    settings = {"env_actions": [0, 1, 2], "n_envs": 2, "n_steps": 32, "cnn_features": 64, "critic_hidden": 64}
    run = shelm.train(ENV_ID, agent="cnn", steps=64, settings=settings, run_dir=tmp_path / "run")
    assert load_run_config(run.run_dir).env_actions == "0,1,2"
    _, policy, _ = load_policy(run.run_dir)
    actor_layers = [layer for layer in policy.agent.heads.actor.modules() if isinstance(layer, torch.nn.Linear)]
    assert actor_layers[-1].out_features == 3
    agent = run.agent()
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    assert env.action_space.n == 3 and agent.act(obs) in (0, 1, 2)
    assert main(["eval", str(run.run_dir), "--episodes", "2", "--quiet"]) == 0


def test_fixed_layouts_are_the_envs_own_first_seeds_drawn_in_a_seeded_order() -> None:
    def first_frames(env, resets: int) -> list[bytes]:
        frames = [env.reset(seed=5)[0].tobytes()]
        return frames + [env.reset()[0].tobytes() for _ in range(resets)]

    layouts = first_frames(make_env(EnvSettings(ENV_ID, layouts=3)), 60)
    plain = make_env(EnvSettings(ENV_ID))
    own_seeds = {plain.reset(seed=seed)[0].tobytes() for seed in range(3)}
    assert set(layouts) == own_seeds and len(own_seeds) == 3
    assert first_frames(make_env(EnvSettings(ENV_ID, layouts=3)), 60) == layouts  # same seed, same order
    assert len({plain.reset(seed=seed)[0].tobytes() for seed in range(20)}) > 3  # without it: many more
