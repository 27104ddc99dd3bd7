"""Environments of packages shelm does not depend on, named gymnasium's way (`--env module:EnvId`): the module is
imported, then the id made. ale-py's Atari games (Pong here) observe plain RGB frames; ViZDoom's observe a Dict of
the screen and game variables, from which `obs_key` (auto: the only uint8 image) picks the frame."""

from __future__ import annotations

import json

import pytest

from shelm import ppo
from shelm.cli import main
from shelm.envs import EnvSettings, ObsPreprocessing, make_env
from shelm.runs import load_run_config, read_metrics

PONG = "ale_py:ALE/Pong-v5"
DOOM = "vizdoom.gymnasium_wrapper:VizdoomBasic-v1"
TINY = ["--n-envs", "2", "--set", "n_steps=32", "--set", "cnn_features=32", "--set", "critic_hidden=32", "--quiet"]


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """ViZDoom writes its config (_vizdoom.ini, _vizdoom/) into the working directory."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("env_id", "frame"), [(PONG, [210, 160, 3]), (DOOM, [240, 320, 3])])
def test_a_plugin_env_trains_resumes_evaluates_and_is_inspected(tmp_path, capsys, monkeypatch, env_id, frame):
    run = tmp_path / "run"
    collect = ppo.Collector.collect
    calls = []

    def interrupted_after_one_rollout(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return collect(self)

    monkeypatch.setattr(ppo.Collector, "collect", interrupted_after_one_rollout)
    argv = ["train", "--env", env_id, "--agent", "cnn", "--steps", "128", "--set", "checkpoint_every=1"]
    assert main([*argv, "--run-dir", str(run), *TINY]) == 130
    monkeypatch.setattr(ppo.Collector, "collect", collect)
    assert load_run_config(run).env_id == env_id  # the module is in the config: the run reproduces
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    rows = read_metrics(run)
    assert [r["global_step"] for r in rows] == [64, 128]
    assert rows[-1]["sps"] > 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["env_id"] == env_id and report["greedy"]["episodes"] == 1
    assert main(["inspect", str(run), "--episodes", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"][0]["length"] >= 1 and (run / "inspect" / "inspect.html").is_file()
    assert json.loads((run / "config.json").read_text())["config"]["obs_key"] == "auto"
    native = make_env(EnvSettings(env_id, preprocess=ObsPreprocessing(resize=None)))
    assert list(native.observation_space.shape) == frame  # the frame, not the Dict
    # obs_resize=auto: larger than 96 pixels
    assert make_env(EnvSettings(env_id)).observation_space.shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("env_id", "extra", "fragment"),
    [
        ("no_such_module:Foo-v0", [], "module 'no_such_module' does not import"),
        ("ale_py:ALE/Pongg-v5", [], "registers no env 'ALE/Pongg-v5'; did you mean 'ale_py:ALE/Pong-v5'"),
        (DOOM, ["--set", "obs_key=pixels"], "--set obs_key=pixels: env"),
        (PONG, ["--set", "obs_key=screen"], "does not observe a Dict; leave obs_key=auto"),
    ],
)
def test_bad_plugin_envs_are_one_line_and_write_nothing(tmp_path, capsys, env_id, extra, fragment):
    run = tmp_path / "run"
    assert main(["train", "--env", env_id, "--agent", "cnn", "--steps", "64", "--run-dir", str(run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not run.exists()


def test_a_dict_observation_without_one_image_names_its_keys():
    import gymnasium as gym
    import numpy as np

    from shelm.envs import image_entry
    from shelm.errors import ShelmError

    image = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    two = gym.spaces.Dict({"left": image, "right": image, "speed": gym.spaces.Box(-1, 1, (1,))})
    with pytest.raises(ShelmError, match=r"2 images \(left, right\).*--set obs_key=KEY"):
        image_entry("Two-v0", two, "auto")
    assert image_entry("Two-v0", two, "right") == "right"
    with pytest.raises(ShelmError, match="no uint8 HxWxC image"):
        image_entry("None-v0", gym.spaces.Dict({"speed": gym.spaces.Box(-1, 1, (1,))}), "auto")
