"""The PPO recipe's options beyond shelm's defaults: the learning rate and entropy schedule over a horizon of its
own (CleanRL ppo_trxl anneals over twice its run), raw advantages and the clipped value loss. Each default keeps
shelm's behaviour; each option computes the documented numbers; bad values are refused in one line."""

from __future__ import annotations

import pytest
import torch

from shelm import ppo
from shelm.agents import resolve_config
from shelm.agents.policy import build_policy
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.envs import probe_env
from shelm.rollout import Rollout

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
        ("norm_adv=maybe", "--set norm_adv=maybe: expected true or false"),
        ("clip_vloss=2", "--set clip_vloss=2: expected true or false"),
    ],
)
def test_bad_values_are_one_line_exit_2(tmp_path, capsys, setting, fragment):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "cnn", "--steps", "256", "--run-dir", str(run)]
    assert main([*argv, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not run.exists()


def test_the_clipped_value_loss_takes_the_larger_error_of_the_clipped_value():
    values, rollout_values, returns = torch.tensor([1.0, 0.0, 0.5]), torch.zeros(3), torch.tensor([1.0, -1.0, 0.5])
    plain = TrainConfig(clip_coef=0.2)
    # squared errors: new values [0, 1, 0]; rollout values moved by at most 0.2 ([0.2, 0, 0.2]): [0.64, 1, 0.09]
    assert ppo.value_loss_of(values, rollout_values, returns, plain).item() == pytest.approx(0.5 * 1 / 3)
    clipped = TrainConfig(clip_coef=0.2, clip_vloss=True)
    assert ppo.value_loss_of(values, rollout_values, returns, clipped).item() == pytest.approx(0.5 * 1.73 / 3)


@pytest.mark.parametrize("norm_adv", [True, False])
def test_raw_advantages_reach_the_policy_loss_unstandardised(norm_adv):
    """One minibatch of the whole rollout, before any gradient step (every ratio 1): the policy loss is minus the
    advantages' mean, which is 0 once they are standardised."""
    overrides = {"n_envs": 2, "n_steps": 8, "n_epochs": 1, "n_minibatches": 1, "cnn_features": 16}
    overrides |= {"actor_hidden": 8, "critic_hidden": 8, "precision": "float32", "norm_adv": norm_adv}
    config, _ = resolve_config("MiniGrid-Empty-5x5-v0", "cnn", overrides)
    torch.manual_seed(0)
    policy = build_policy(config, probe_env(config))
    agent = policy.agent
    rollout = Rollout.empty(8, 2, (56, 56, 3), 0, agent.initial_state(2))
    rollout.obs = torch.randint(
        0, 256, rollout.obs.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    rollout.actions = torch.randint(0, 7, (8, 2), generator=torch.Generator().manual_seed(2))
    rollout.rewards = torch.linspace(-1.0, 2.0, 16).view(8, 2)
    with torch.no_grad():
        logits, values = agent.forward_sequences(rollout.obs, rollout.memory, rollout.initial_state)
    rollout.logprobs = torch.distributions.Categorical(logits=logits).log_prob(rollout.actions)
    rollout.values = values
    rollout.compute_returns(torch.zeros(2), config.gamma, config.gae_lambda)
    optimizer = torch.optim.AdamW(agent.parameters(), lr=config.lr)
    stats = ppo.ppo_update(agent, optimizer, rollout, config, 0.0, torch.Generator(), torch.device("cpu"), "float32")
    expected = 0.0 if norm_adv else -rollout.advantages.mean().item()
    assert abs(rollout.advantages.mean().item()) > 0.5
    assert stats["policy_loss"] == pytest.approx(expected, abs=1e-5)
