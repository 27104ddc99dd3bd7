"""The papers' other suites (optional extras, installed in CI): Procgen memory mode, MiniWorld, Memory Gym.
Every agent trains a few PPO iterations on one task of each suite and is evaluated; each suite's adapter is
checked on its own: ids, spaces, seeding, success flags, headless rendering."""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib.util import find_spec

import gymnasium as gym
import numpy as np
import pytest

from shelm.cli import main
from shelm.envs import EnvSettings, make_env, make_vec_env, suites
from shelm.envs import procgen as procgen_suite
from shelm.errors import ShelmError

# Tasks with short episodes (dodgeball's agent dies within ~150 steps, Sign stops at 20, Mortar Mayhem at 135), so
# the evaluation stays quick; Sign observes a dict and Mortar Mayhem moves with MultiDiscrete actions.
TASKS = {
    "procgen": "procgen/dodgeball-memory",
    "miniworld": "MiniWorld-Sign-v0",
    "memory_gym": "MortarMayhem-v0",
}
AGENTS = ["cnn", "lstm", "helm", "helmv2", "shelm"]
TINY = {"n_envs": 2, "n_steps": 16, "cnn_features": 64, "critic_hidden": 64, "lstm_hidden": 32, "mem_len": 8}
# HELMv2 and SHELM see these frames through the tiny CLIP: their default EfficientNet path (tested on MiniGrid in
# tests/memory) costs ~0.1 s per new frame, most of a minute per suite for the evaluation episodes alone.
CLIP_AGENTS = {"helmv2": "image_encoder", "shelm": "retriever"}


def test_every_suite_of_the_papers_is_listed_with_its_state(capsys):
    state = {name: installed for name, installed, _ in suites()}
    assert state == {
        "minigrid": True,
        "random_maze": True,
        "procgen": True,
        "miniworld": True,
        "memory_gym": True,
        "avalon": False,
        "dmlab": False,
        "factory": True,  # a user's Python env factory (shelm.train / shelm.load), built as a suite's envs are
    }
    assert main(["envs", "--suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "procgen\tinstalled\tpip install -e '.[procgen]'" in lines
    assert main(["envs"]) == 0
    listed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert listed["procgen/maze-memory"] == "procgen" and "procgen/coinrun-memory" not in listed
    assert listed["MiniWorld-Sign-v0"] == "miniworld" and listed["MortarMayhem-v0"] == "memory_gym"


@pytest.mark.parametrize("suite", list(TASKS))
@pytest.mark.parametrize("agent", AGENTS)
def test_every_agent_trains_and_evaluates_on_each_suite(
    tmp_path, capsys, tiny_llama_with_tokenizer_dir, tiny_clip_dir, suite, agent
):
    run_dir = tmp_path / "run"
    settings = {**TINY, "lm": str(tiny_llama_with_tokenizer_dir)}
    if agent in CLIP_AGENTS:
        settings |= {CLIP_AGENTS[agent]: "clip", "clip_model": str(tiny_clip_dir)}
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    argv = ["train", "--env", TASKS[suite], "--agent", agent, "--steps", str(2 * 2 * 16), "--run-dir", str(run_dir)]
    assert main([*argv, "--quiet", *sets]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in rows] == [32, 64]
    assert all(np.isfinite(r["policy_loss"]) and np.isfinite(r["value_loss"]) for r in rows)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["env_id"] == TASKS[suite] and report["greedy"]["episodes"] == 1
    assert report["sampled"]["length_mean"] >= 1


# --- Procgen -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("procgen/coinrun-memory", "Procgen's coinrun has no memory mode"),
        ("procgen/mazes-memory", "unknown env 'procgen/mazes-memory'"),
        ("procgen/maze-extreme", "MODE one of easy, hard, memory"),
    ],
)
def test_procgen_refuses_bad_game_and_mode_pairs_before_procgen_can_abort(env_id, message):
    with pytest.raises(ShelmError, match=message):
        make_vec_env(EnvSettings(env_id), 2)
    with pytest.raises(ShelmError, match=message):
        make_env(EnvSettings(env_id))


def test_procgen_memory_games_are_batched_natively_and_seeded():
    for game in procgen_suite.MEMORY_GAMES:
        envs = make_vec_env(EnvSettings(f"procgen/{game}-memory"), 3)
        assert isinstance(envs, procgen_suite.ProcgenVecEnv)
        obs, _ = envs.reset(seed=5)
        assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
        assert envs.single_action_space == gym.spaces.Discrete(15)
        envs.close()

    def rollout(seed: int) -> np.ndarray:
        envs = make_vec_env(EnvSettings("procgen/maze-memory"), 2)
        frames = [envs.reset(seed=seed)[0]]
        for t in range(20):
            frames.append(envs.step(np.array([t % 15, (3 * t) % 15]))[0])
        envs.close()
        return np.stack(frames)

    assert np.array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7), rollout(8))


def test_procgen_reports_episode_ends_and_level_completion():
    envs = make_vec_env(EnvSettings("procgen/maze-memory"), 8)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = successes = 0
    for _ in range(600):  # maze-memory ends a level after at most 500 steps
        _, reward, terminated, truncated, infos = envs.step(rng.integers(15, size=8))
        assert not truncated.any()
        if terminated.any():
            final = infos["final_info"]
            assert np.array_equal(final["_is_success"], terminated)
            # A completed maze pays 10 on its last step; a timed-out one pays nothing.
            assert np.array_equal(final["is_success"][terminated], reward[terminated] > 0)
            ended += int(terminated.sum())
            successes += int(final["is_success"].sum())
    envs.close()
    assert ended >= 8 and 0 < successes < ended


def test_procgen_records_with_one_renderable_game_per_copy():
    envs = make_vec_env(EnvSettings("procgen/heist-memory"), 2, render_mode="rgb_array")
    obs, _ = envs.reset(seed=1)
    assert np.array_equal(envs.envs[0].render(), obs[0])
    envs.close()


# --- MiniWorld ---------------------------------------------------------------------------------------------


def test_miniworld_frames_are_60x80_and_sign_keeps_only_the_image():
    for env_id in ("MiniWorld-Hallway-v0", "MiniWorld-Sign-v0"):
        env = make_env(EnvSettings(env_id))
        obs, _ = env.reset(seed=0)
        assert obs.shape == (60, 80, 3) and obs.dtype == np.uint8 and obs.std() > 0
        assert env.observation_space.shape == (60, 80, 3)
        env.close()


def test_miniworld_async_vectorization_spawns_and_matches_sync():
    sync = make_vec_env(EnvSettings("MiniWorld-Hallway-v0"), 2, "sync")
    spawned = make_vec_env(EnvSettings("MiniWorld-Hallway-v0"), 2, "async")
    assert {type(p).__name__ for p in spawned.processes} == {"SpawnProcess"}
    a, _ = sync.reset(seed=3)
    b, _ = spawned.reset(seed=3)
    for t in range(5):
        assert np.array_equal(a, b)
        a = sync.step(np.array([2, t % 3]))[0]
        b = spawned.step(np.array([2, t % 3]))[0]
    sync.close()
    spawned.close()


# --- Memory Gym --------------------------------------------------------------------------------------------


def test_memory_gym_actions_flatten_and_frames_stay_images():
    env = make_env(EnvSettings("MysteryPath-v0"))
    assert env.action_space == gym.spaces.Discrete(9) and env.observation_space.shape == (84, 84, 3)
    flat = env.unwrapped.action_space  # the game's own MultiDiscrete([3, 3])
    assert [tuple(env.get_wrapper_attr("action")(i)) for i in (0, 4, 8)] == [(0, 0), (1, 1), (2, 2)]
    assert list(flat.nvec) == [3, 3]
    env.close()
    env = make_env(EnvSettings("MortarMayhemB-Grid-v0"))
    obs, _ = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(4) and obs.shape == (84, 84, 3) and obs.dtype == np.uint8
    env.close()


def test_memory_gym_episode_end_carries_is_success():
    env = make_env(EnvSettings("MortarMayhem-Grid-v0"))
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            assert info["is_success"] is False and info["success"] == 0
            break
    else:
        pytest.fail("Mortar Mayhem did not end")
    env.close()


# --- suites no registry can provide ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "message"),
    [("avalon/eat-v0", "Avalon downloads its Godot"), ("dmlab/psychlab_continuous_recognition", "DeepMind Lab")],
)
def test_avalon_and_dmlab_say_what_they_need(capsys, env_id, message):
    assert main(["train", "--env", env_id, "--agent", "cnn"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("env_id", "module", "hint"),
    [
        ("procgen/maze-memory", "procgen", "pip install -e '.[procgen]'"),
        ("MiniWorld-Sign-v0", "miniworld", "pip install -e '.[miniworld]'"),
        ("MysteryPath-v0", "memory_gym", "pip install --no-deps memory-gym==1.0.2"),
    ],
)
def test_a_suite_that_is_not_installed_names_its_install_command(monkeypatch, capsys, env_id, module, hint):
    monkeypatch.setitem(sys.modules, module, None)  # `import MODULE` now fails as if it were not installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a))
    assert main(["train", "--env", env_id, "--agent", "cnn"]) == 2
    err = capsys.readouterr().err
    assert hint in err and env_id in err and err.count("\n") == 1
    assert {name: state for name, state, _ in suites()}[module] is False
