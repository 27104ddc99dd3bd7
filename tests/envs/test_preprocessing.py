"""Observation preprocessing (`obs_resize`, `obs_grayscale`, `obs_frame_stack`): the default leaves every built-in
suite's frames as they were and brings large ones (ALE's 210x160) to 64x64; it is recorded in config.json, and a
run saved before the settings existed keeps its frames as the env made them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shelm.cli import main
from shelm.config import TrainConfig, parse_overrides
from shelm.envs import RANDOM_MAZE_ID, EnvSettings, ObsPreprocessing, make_env, make_vec_env
from shelm.errors import ShelmError
from shelm.ppo import load_policy
from shelm.runs import load_run_config

PONG = "ale_py:ALE/Pong-v5"
NATIVE = ObsPreprocessing(resize=None)
"""What shelm did before preprocessing existed: the env's frames as it makes them."""

# One env of every built-in suite (all are installed where the tests run).
ONE_PER_SUITE = [
    "MiniGrid-MemoryS7-v0",
    "BabyAI-GoToObjS4-v0",
    RANDOM_MAZE_ID,
    "procgen/maze-memory",
    "MiniWorld-Hallway-v0",
    "MysteryPath-v0",
]


def _play(env, steps: int, seed: int = 3) -> list[np.ndarray]:
    """The observations of `steps` steps of a fixed action sequence from `reset(seed)`."""
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    actions = np.random.default_rng(0).integers(env.action_space.n, size=steps)
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(int(action))
        seen.append(obs)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
            seen.append(obs)
    env.close()
    return seen


@pytest.mark.parametrize("env_id", ONE_PER_SUITE)
def test_the_default_keeps_every_builtin_suites_frames_bit_identical(env_id: str) -> None:
    default, native = make_env(EnvSettings(env_id)), make_env(EnvSettings(env_id, preprocess=NATIVE))
    assert default.observation_space == native.observation_space
    for new, old in zip(_play(default, 12), _play(native, 12), strict=True):
        assert new.dtype == old.dtype == np.uint8
        np.testing.assert_array_equal(new, old)


def test_the_default_keeps_procgens_native_batching_and_its_frames() -> None:
    default = make_vec_env(EnvSettings("procgen/maze-memory"), 2)
    native = make_vec_env(EnvSettings("procgen/maze-memory", preprocess=NATIVE), 2)
    assert type(default) is type(native) and type(default).__name__ == "ProcgenVecEnv"
    np.testing.assert_array_equal(default.reset(seed=5)[0], native.reset(seed=5)[0])
    for _ in range(5):
        np.testing.assert_array_equal(default.step(np.zeros(2, int))[0], native.step(np.zeros(2, int))[0])
    default.close()
    native.close()


def test_auto_resizes_large_frames_to_64x64_and_keeps_a_chosen_minigrid_tile_size() -> None:
    assert make_env(EnvSettings(PONG)).observation_space.shape == (64, 64, 3)
    assert make_env(EnvSettings(PONG, preprocess=NATIVE)).observation_space.shape == (210, 160, 3)
    assert make_env(EnvSettings(PONG, preprocess=ObsPreprocessing((32, 48)))).observation_space.shape == (32, 48, 3)
    # 16-pixel cells make 112x112 views, larger than 96: the tile size is the user's choice, so 'auto' keeps it.
    assert make_env(EnvSettings("MiniGrid-MemoryS7-v0", tile_size=16)).observation_space.shape == (112, 112, 3)


def test_grey_frames_stack_along_the_channels_oldest_first() -> None:
    grey = make_env(EnvSettings(PONG, preprocess=ObsPreprocessing(grayscale=True)))
    stacked = make_env(EnvSettings(PONG, preprocess=ObsPreprocessing(grayscale=True, frame_stack=4)))
    assert grey.observation_space.shape == (64, 64, 1)
    assert stacked.observation_space.shape == (64, 64, 4)
    frames, stacks = _play(grey, 6), _play(stacked, 6)
    assert all(s.shape == (64, 64, 4) and s.dtype == np.uint8 for s in stacks)
    # The first observation fills the stack with the episode's first frame; later ones shift the newest in last.
    np.testing.assert_array_equal(stacks[0], np.repeat(frames[0], 4, axis=-1))
    np.testing.assert_array_equal(stacks[6], np.concatenate(frames[3:7], axis=-1))
    assert not np.array_equal(frames[3], frames[6])  # the game moved: the channels hold different frames


def test_settings_are_checked_and_recorded_and_old_runs_keep_native_frames() -> None:
    config = TrainConfig(env_id=PONG, **parse_overrides(["obs_resize=64x48", "obs_grayscale=true"]))
    config.validate()
    assert EnvSettings.from_config(config).preprocess == ObsPreprocessing((64, 48), True, 1)
    saved = config.to_dict()
    assert (saved["obs_resize"], saved["obs_grayscale"], saved["obs_frame_stack"]) == ("64x48", True, 1)
    assert EnvSettings.from_config(TrainConfig.from_dict(saved)) == EnvSettings.from_config(config)
    assert EnvSettings.from_config(TrainConfig()).preprocess == ObsPreprocessing("auto", False, 1)
    before = {key: value for key, value in saved.items() if not key.startswith("obs_") or key == "obs_key"}
    assert EnvSettings.from_config(TrainConfig.from_dict(before)).preprocess == NATIVE
    bad_settings = [("obs_resize=84", "HEIGHTxWIDTH"), ("obs_resize=4x84", "6 to 1024"), ("obs_frame_stack=0", ">= 1")]
    for bad, says in bad_settings:
        with pytest.raises(ShelmError, match=says):
            TrainConfig(**parse_overrides([bad])).validate()


def test_a_runs_env_settings_are_read_from_every_env_setting_of_its_config() -> None:
    overrides = ["minigrid_tile_size=16", "obs_key=image", "env_kwargs=max_steps=8,agent_view_size=5"]
    overrides += ["obs_resize=none", "obs_frame_stack=3"]
    config = TrainConfig(env_id="MiniGrid-MemoryS7-v0", **parse_overrides(overrides))
    settings = EnvSettings.from_config(config, max_episode_steps=40)
    assert settings == EnvSettings(
        "MiniGrid-MemoryS7-v0",
        tile_size=16,
        obs_key="image",
        env_kwargs={"max_steps": 8, "agent_view_size": 5},
        preprocess=ObsPreprocessing(None, False, 3),
        max_episode_steps=40,
    )
    assert EnvSettings.from_config(TrainConfig(env_id=PONG)) == EnvSettings(PONG)  # a new run's are the defaults


def test_a_bad_preprocessing_setting_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["train", "--env", PONG, "--agent", "cnn", "--steps", "8", "--run-dir", str(tmp_path / "run")]
    assert main([*argv, "--set", "obs_resize=big"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "obs_resize=big" in err and "84x84" in err
    assert not (tmp_path / "run").exists()
    assert main([*argv, "--agent", "helmv2", "--set", "obs_frame_stack=4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "obs_frame_stack=4" in err and "obs_frame_stack=1" in err


def test_eval_and_resume_use_the_recorded_preprocessing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "pong"
    tiny = ["--set", "cnn_features=32", "--set", "critic_hidden=32", "--set", "n_steps=8", "--set", "n_minibatches=1"]
    argv = ["train", "--env", PONG, "--agent", "cnn", "--steps", "8", "--n-envs", "1", "--run-dir", str(run), "--quiet"]
    settings = ["--set", "obs_resize=40x32", "--set", "obs_grayscale=true", "--set", "obs_frame_stack=2"]
    assert main([*argv, *settings, *tiny]) == 0
    recorded = json.loads((run / "config.json").read_text())["config"]
    assert (recorded["obs_resize"], recorded["obs_grayscale"], recorded["obs_frame_stack"]) == ("40x32", True, 2)
    config, policy, _ = load_policy(run)  # the checkpoint's CNN only loads into a network built for 40x32x2 frames
    assert EnvSettings.from_config(config).preprocess == ObsPreprocessing((40, 32), True, 2)
    assert policy.agent.encoder.convs[0].in_channels == 2
    assert main(["eval", str(run), "--episodes", "1", "--max-episode-steps", "5", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["greedy"]["length_mean"] == 5 and report["greedy"]["capped"] == 1
    # Resume continues with the recorded settings (its envs are rebuilt from config.json).
    data = json.loads((run / "config.json").read_text())
    data["config"]["total_steps"] = 16
    (run / "config.json").write_text(json.dumps(data))
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert [json.loads(line)["global_step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [8, 16]
    # A run saved before the settings existed replays on the frames its env made.
    del data["config"]["obs_resize"], data["config"]["obs_grayscale"], data["config"]["obs_frame_stack"]
    (run / "config.json").write_text(json.dumps(data))
    old = load_run_config(run)
    assert make_env(EnvSettings.from_config(old)).observation_space.shape == (210, 160, 3)


def test_a_sweep_continues_trials_saved_before_the_settings_existed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep, env_id = tmp_path / "sweep", "MiniGrid-Empty-5x5-v0"
    argv = ["sweep", "--agents", "cnn", "--envs", env_id, "--seeds", "1", "--steps", "64", "--out", str(sweep)]
    argv += ["--set", "n_envs=2", "--set", "n_steps=32", "--set", "cnn_features=32", "--set", "critic_hidden=32"]
    assert main(argv) == 0
    config_file = sweep / f"{env_id}__cnn__s1" / "config.json"
    data = json.loads(config_file.read_text())
    del data["config"]["obs_resize"], data["config"]["obs_grayscale"], data["config"]["obs_frame_stack"]
    config_file.write_text(json.dumps(data))  # as a trial saved before them: obs_resize 'none' (its frames, 56x56)
    capsys.readouterr()
    assert main(argv) == 0  # 'auto' gives these frames unchanged: the same trial
    assert "1 finished (skipped)" in capsys.readouterr().out
    assert main([*argv, "--set", "obs_resize=28x28"]) == 2  # other frames: another trial
    assert "was trained with obs_resize='none', this sweep asks obs_resize='28x28'" in capsys.readouterr().err


def test_pretrained_image_models_see_a_grey_frame_as_rgb() -> None:
    import torch

    from shelm.memory.imagenet import resize_frames

    grey = torch.randint(0, 256, (2, 84, 84, 1), dtype=torch.uint8)
    half = torch.full((3,), 0.5)
    seen = resize_frames(grey, 32, half, half)
    assert seen.shape == (2, 3, 32, 32)
    torch.testing.assert_close(seen, resize_frames(grey.expand(-1, -1, -1, 3), 32, half, half), rtol=0, atol=0)
