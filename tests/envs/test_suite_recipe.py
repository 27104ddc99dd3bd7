"""The recipe for adding an environment suite, followed from outside the package: a toy gymnasium env, one
`Suite` record and one `register_suite` call make it trainable through `shelm train`, with its own presets and its
own success rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from shelm.cli import main
from shelm.envs import Suite, pair_preset, register_suite, success_rule, suite_of, suites, unregister_suite
from shelm.registry import AlreadyRegistered
from shelm.runs import load_run_config, read_metrics

TOY_ID = "ToySuite-Corridor-v0"
CORRIDOR_LENGTH = 4


class Corridor(gym.Env):
    """A corridor the agent walks down one cell per step, whatever it does, as an 8x8 grey image of its position.
    It pays nothing: reaching the end, its only success, shows as `reached_end` in the info of the last step."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _frame(self) -> np.ndarray:
        return np.full((8, 8, 3), 60 * self.position, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = 0
        return self._frame(), {}

    def step(self, action: int):
        self.position += 1
        ended = self.position == CORRIDOR_LENGTH
        return self._frame(), 0.0, ended, False, {"reached_end": True} if ended else {}


def reached_end(infos: dict[str, Any], env_index: int, episode_return: float) -> bool:
    """The toy suite's success rule: the corridor reported reaching its end (its return is always 0)."""
    final = infos.get("final_info", {})
    return "reached_end" in final and bool(final["_reached_end"][env_index] and final["reached_end"][env_index])


TOY = Suite(
    "toy",
    handles=lambda env_id: env_id.startswith("ToySuite-"),
    ids=lambda: [TOY_ID],
    presets={(TOY_ID, "cnn"): {"ent_coef": 0.02}},
    success=reached_end,
)


@pytest.fixture
def toy_suite() -> Iterator[Suite]:
    gym.register(TOY_ID, entry_point=Corridor)
    register_suite(TOY)
    yield TOY
    unregister_suite(TOY.name)
    del gym.registry[TOY_ID]


def test_a_suite_registered_from_outside_trains_with_its_presets_and_success_rule(toy_suite, tmp_path, capsys):
    assert suite_of(TOY_ID) == "toy" and success_rule(TOY_ID) is reached_end
    assert pair_preset(TOY_ID, "cnn") == {"ent_coef": 0.02} and pair_preset(TOY_ID, "lstm") is None
    assert main(["envs"]) == 0 and f"{TOY_ID}\ttoy" in capsys.readouterr().out.splitlines()

    run_dir = tmp_path / "run"
    argv = ["train", "--env", TOY_ID, "--agent", "cnn", "--steps", "64", "--n-envs", "2", "--set", "n_steps=32"]
    argv += ["--set", "cnn_features=64", "--set", "critic_hidden=64", "--run-dir", str(run_dir), "--quiet"]
    assert main(argv) == 0

    (row,) = read_metrics(run_dir)
    assert (row["global_step"], row["iteration"]) == (64, 1)
    assert row["episodes"] == 2 * 32 // CORRIDOR_LENGTH and row["length_mean"] == CORRIDOR_LENGTH
    # Every episode returned 0, which the default rule (a positive return) counts as a failure.
    assert row["return_mean"] == 0.0 and row["success_rate"] == 1.0
    assert load_run_config(run_dir).ent_coef == 0.02  # the suite's preset for (toy task, cnn)


def test_registering_a_name_again_is_refused_unless_it_replaces_the_suite_in_place(toy_suite):
    names = [name for name, _, _ in suites()]
    with pytest.raises(AlreadyRegistered, match=r"^suite 'toy' is already registered; .* pass replace=True"):
        register_suite(dataclasses.replace(toy_suite, install_hint="pip install toy"))
    assert ("toy", True, "built in") in suites()
    register_suite(dataclasses.replace(toy_suite, install_hint="pip install toy"), replace=True)
    assert [name for name, _, _ in suites()] == names and ("toy", True, "pip install toy") in suites()
    unregister_suite("toy")
    assert suite_of(TOY_ID) == "gymnasium" and "toy" not in [name for name, _, _ in suites()]
    register_suite(toy_suite)  # for the fixture to unregister


def test_presets_for_ids_the_suite_does_not_handle_are_refused():
    with pytest.raises(ValueError, match="MiniGrid-Empty-5x5-v0"):
        register_suite(dataclasses.replace(TOY, presets={("MiniGrid-Empty-5x5-v0", "cnn"): {"lr": 1e-3}}))
    assert suite_of(TOY_ID) == "gymnasium"
