"""An env whose Dict observation holds an instruction text beside its image: shelm shows the agent the image, puts
the text in the info, and an LM agent reads it into its memory with `--set instruction=KEY`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from shelm.cli import main
from shelm.envs import EnvSettings, make_env, make_vec_env

ENV_ID = "shelm-test/Told-v0"
TASKS = ("go left", "go right")


class Told(gym.Env):
    """One step: a blank frame and the task in words; action 0 succeeds on 'go left', action 1 on 'go right'."""

    observation_space = gym.spaces.Dict(
        image=gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
        task=gym.spaces.Text(16, charset="abcdefghijklmnopqrstuvwxyz "),
    )
    action_space = gym.spaces.Discrete(2)

    def _obs(self) -> dict:
        return {"image": np.zeros((8, 8, 3), np.uint8), "task": TASKS[self.answer]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.answer = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(action == self.answer), True, False, {}


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    gym.register(ENV_ID, entry_point=Told)
    yield
    gym.registry.pop(ENV_ID)


def test_the_text_goes_to_the_info_and_the_image_to_the_agent():
    env = make_env(EnvSettings(ENV_ID))
    with warnings.catch_warnings():
        warnings.filterwarnings("error")  # the observations are within their spaces, and so on
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version.*")
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (8, 8, 3) and info["task"] in TASKS
    *_, info = env.step(0)
    assert info["task"] in TASKS
    envs = make_vec_env(EnvSettings(ENV_ID), 3)
    _, info = envs.reset(seed=0)
    assert info["task"].shape == (3,) and set(info["task"]) <= set(TASKS)
    envs.close()


def test_an_lm_agent_reads_the_text_named_by_the_setting(tiny_llama_with_tokenizer_dir: Path, tmp_path: Path):
    run = tmp_path / "run"
    argv = ["train", "--env", ENV_ID, "--agent", "helm", "--steps", "64", "--n-envs", "2", "--run-dir", str(run)]
    settings = [f"lm={tiny_llama_with_tokenizer_dir}", "instruction=task", "instruction_tokens=4", "n_steps=32"]
    assert main([*argv, "--quiet", *[a for s in settings for a in ("--set", s)]]) == 0
    memory = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert memory["instruction"] == "task" and memory["instruction_tokens"] == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["global_step"] == 64 and rows[-1]["episodes"] > 0
