"""The oracle-memory control: the cue comes from the environment's state, through the one trainer."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import torch
from conftest import train_run

from shelm.cli import main
from shelm.envs import EnvSettings, make_env
from shelm.envs.minigrid import MEMORY_CUE
from shelm.memory.oracle import N_OBJECT_TYPES, OracleCueMemory
from shelm.runs import read_metrics

KEY, BALL = 5, 6


def test_the_cue_is_the_start_room_object_and_holds_for_the_whole_episode():
    env = make_env(EnvSettings("MiniGrid-MemoryS7-v0"))
    seen = set()
    for seed in range(12):
        _, info = env.reset(seed=seed)
        world = env.unwrapped
        start_object = world.grid.get(1, world.height // 2 - 1)
        assert info[MEMORY_CUE] == {"key": KEY, "ball": BALL}[start_object.type]
        seen.add(info[MEMORY_CUE])
        for _ in range(5):
            *_, info = env.step(env.action_space.sample())
            assert info[MEMORY_CUE] == {"key": KEY, "ball": BALL}[start_object.type]
    env.close()
    assert seen == {KEY, BALL}  # both cues occur: the control is not a constant


def test_oracle_memory_is_the_one_hot_of_each_envs_cue_across_autoresets():
    envs = gym.vector.SyncVectorEnv([lambda: make_env(EnvSettings("MiniGrid-MemoryS7-v0")) for _ in range(3)])
    memory = OracleCueMemory(torch.device("cpu"))
    memory.reset(3)
    obs, info = envs.reset(seed=4)
    start = torch.ones(3, dtype=torch.bool)
    for _ in range(40):
        out = memory.step(torch.as_tensor(obs), start, info)
        assert out.shape == (3, N_OBJECT_TYPES)
        expected = np.zeros((3, N_OBJECT_TYPES), dtype=np.float32)
        cues = [e.unwrapped.grid.get(1, e.unwrapped.height // 2 - 1).encode()[0] for e in envs.envs]
        expected[np.arange(3), cues] = 1
        np.testing.assert_array_equal(out.numpy(), expected)
        obs, _, terminated, truncated, info = envs.step(envs.action_space.sample())
        start = torch.as_tensor(terminated | truncated)
    assert {words[0][0] for words in memory.last_words()} <= {"cue: key", "cue: ball"}
    envs.close()


def test_oracle_trains_evaluates_and_is_refused_off_the_memory_tasks(tmp_path, capsys):
    run = train_run(tmp_path / "oracle", "MiniGrid-MemoryS7-v0", "oracle", 256)
    rows = read_metrics(run)
    assert [r["global_step"] for r in rows] == [128, 256]
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy"]["episodes"] == 2

    bad = tmp_path / "doorkey"
    argv = ["train", "--env", "MiniGrid-DoorKey-5x5-v0", "--agent", "oracle", "--steps", "256", "--run-dir", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MiniGrid-DoorKey-5x5-v0" in err[0] and "MemoryS11" in err[0]
    assert not bad.exists()
