"""The PPO recipe's options beyond shelm's defaults: the learning rate and entropy schedule over a horizon of its
own (CleanRL ppo_trxl anneals over twice its run). Each default keeps shelm's behaviour; each option computes the
documented numbers; bad values are refused in one line."""

from __future__ import annotations

import pytest

from shelm import ppo
from shelm.cli import main
from shelm.config import TrainConfig

# CleanRL ppo_trxl's MiniGrid-Memory schedule: 2.75e-4 -> 1e-5 and 1e-4 -> 1e-6 over 4,096,000 steps.
PEER_SCHEDULE = {"lr": 2.75e-4, "lr_final": 1e-5, "ent_coef": 1e-4, "ent_coef_final": 1e-6, "decay_steps": 4_096_000}


@pytest.mark.parametrize(
    ("step", "lr", "ent_coef"),
    [
        (0, 2.75e-4, 1e-4),
        (1_024_000, 2.75e-4 - (2.75e-4 - 1e-5) / 4, 1e-4 - (1e-4 - 1e-6) / 4),
        (2_048_000, (2.75e-4 + 1e-5) / 2, (1e-4 + 1e-6) / 2),  # the run's end: half-way through the horizon
        (4_096_000, 1e-5, 1e-6),
        (5_000_000, 1e-5, 1e-6),  # held past the horizon
    ],
)
def test_a_horizon_longer_than_the_run_ends_the_decay_part_way(step, lr, ent_coef):
    config = TrainConfig(total_steps=2_048_000, lr_decay="linear", ent_decay="linear", **PEER_SCHEDULE)
    assert ppo.annealed(config, step) == pytest.approx((lr, ent_coef), rel=1e-12)


def test_the_default_horizon_is_the_run_and_the_default_final_rate_zero():
    config = TrainConfig(total_steps=1000, lr=3e-4, lr_decay="linear", ent_coef=0.01, ent_decay="linear")
    assert ppo.annealed(config, 250) == pytest.approx((2.25e-4, 0.01 - (0.01 - 1e-4) / 4), rel=1e-12)
    assert ppo.annealed(config, 1000) == pytest.approx((0.0, 1e-4), rel=1e-12)
    assert ppo.annealed(TrainConfig(lr_final=1e-5, decay_steps=10), 5) == (3e-4, 0.01)  # no decay asked: constant


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("decay_steps=-1", "decay_steps=-1 must be >= 0"),
        ("lr_final=-0.001", "lr_final=-0.001 must be >= 0"),
    ],
)
def test_bad_values_are_one_line_exit_2(tmp_path, capsys, setting, fragment):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "256", "--run-dir", str(run)]
    assert main([*argv, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not run.exists()
