"""The run plan: every run starts from one plan made once from (env, agent, settings), whose single probe of the
environment is all that the memories and the checks see of it before training builds its vector env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY, train_run

from shelm import envs, ppo
from shelm.agents import resolve_config
from shelm.cli import main
from shelm.envs import EnvSettings, make_vec_env, probe_env
from shelm.info_keys import MISSION
from shelm.probe import RANDOM_PLAY_LANES, RANDOM_PLAY_STEPS
from shelm.runs import read_metrics
from shelm.trainers import plan_run

INSTRUCTED = "BabyAI-GoToObj-v0"


def test_a_helmv2_run_reading_its_instruction_makes_one_env_before_its_vector_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama_with_tokenizer_dir: Path
):
    """Settings, the instruction check, HELMv2's calibration frames and the pre-flight all read the plan's one probe."""
    made: list[str] = []
    made_before_vector: list[int] = []
    make_env, make_vec = envs.make_env, envs.make_vec_env

    def counting_make_env(settings: EnvSettings, *args: Any, **kwargs: Any) -> gym.Env:
        made.append(settings.env_id)
        return make_env(settings, *args, **kwargs)

    def vector_env(*args: Any, **kwargs: Any) -> gym.vector.VectorEnv:
        made_before_vector.append(len(made))
        return make_vec(*args, **kwargs)

    monkeypatch.setattr(envs, "make_env", counting_make_env)  # the probe's, and every env of a vector env
    monkeypatch.setattr(ppo, "make_vec_env", vector_env)  # the trainer's
    lm = ["--set", f"lm={tiny_llama_with_tokenizer_dir}", "--set", "mem_len=4", "--set", "image_encoder=imagenet"]
    run = train_run(tmp_path / "run", INSTRUCTED, "helmv2", 128, *lm, "--set", f"instruction={MISSION}")
    assert made_before_vector[0] == 1 and made[0] == INSTRUCTED
    identity = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert identity["instruction"] == MISSION and identity["kind"] == "helmv2"
    assert [row["global_step"] for row in read_metrics(run)] == [128]


def test_the_probes_random_play_shows_the_frames_a_vector_env_of_its_lanes_would():
    """One env replays each copy's lane; the frames are those of the vector env of as many copies, stepped with one
    batch of actions per step from the run's seed (what HELMv2 was calibrated on before the probe existed)."""
    config, _ = resolve_config("MiniGrid-Empty-5x5-v0", "cnn", {"seed": 7})
    vector = make_vec_env(EnvSettings.from_config(config), RANDOM_PLAY_LANES)
    rng = np.random.default_rng(config.seed)
    try:
        obs, _ = vector.reset(seed=config.seed)
        frames = [obs]
        for _ in range(RANDOM_PLAY_STEPS - 1):
            obs, *_ = vector.step(rng.integers(vector.single_action_space.n, size=RANDOM_PLAY_LANES))
            frames.append(obs)
    finally:
        vector.close()
    probe = probe_env(config)
    assert np.array_equal(probe.frames, np.unique(np.concatenate(frames), axis=0)) and len(probe.frames) > 4
    assert probe.obs_shape == (56, 56, 3) and probe.n_actions == 7
    assert probe.text_keys == (MISSION,) and probe.reset_info[MISSION] == "get to the green goal square"


def test_a_plan_is_checked_before_it_writes_and_starts_the_run_as_shelm_train_does(tmp_path: Path):
    plan = plan_run("MiniGrid-Empty-5x5-v0", "cnn", {"total_steps": 128, "n_envs": 4, "n_steps": 32})
    assert plan.config.total_steps == 128 and plan.probe.env_id == "MiniGrid-Empty-5x5-v0"
    run_dir, row = plan.start(tmp_path / "plan", command="test")
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["command"] == "test" and saved["config"] == plan.config.to_dict()
    assert row["global_step"] == 128 == read_metrics(run_dir)[-1]["global_step"]
    # The command's run of the same settings is the same run.
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "128", "--n-envs", "4"]
    assert main([*argv, "--set", "n_steps=32", "--run-dir", str(tmp_path / "cli"), "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["config"] == saved["config"]
    assert read_metrics(tmp_path / "cli")[-1]["return_mean"] == row["return_mean"]


def test_a_bad_setting_found_by_the_plans_check_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "128", "--run-dir"]
    assert main([*argv, str(tmp_path / "run"), *TINY, "--set", f"instruction={MISSION}"]) == 2
    assert "agent 'cnn' has no language memory" in capsys.readouterr().err and not (tmp_path / "run").exists()
