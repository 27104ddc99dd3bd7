"""Mixed precision of the trained agent: bfloat16 autocast changes the numbers by bfloat16 rounding only, and
everything PPO accumulates (rollout, losses, optimizer state) stays float32."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from shelm import precision
from shelm.acting import EnvLoop, EpisodeTracker
from shelm.agents.policy import Actor, Policy, build_policy
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, make_vec_env, probe_env, success_rule
from shelm.ppo import Collector, ppo_update
from shelm.rollout import RewardNormalizer, Rollout


def _tiny_config(agent: str, agent_precision: str) -> TrainConfig:
    return TrainConfig(
        env_id="MiniGrid-Empty-5x5-v0",
        agent=agent,
        seed=0,
        n_envs=4,
        n_steps=32,
        cnn_features=64,
        critic_hidden=64,
        lstm_hidden=32,
        precision=agent_precision,
        device="cpu",
    )


def _collect(config: TrainConfig) -> tuple[Policy, Rollout]:
    """A real rollout of the config's agent, collected by the trainer's Collector."""
    torch.manual_seed(config.seed)
    envs = make_vec_env(EnvSettings.from_config(config), config.n_envs)
    try:
        policy = build_policy(config, probe_env(config))
        actor = Actor(policy, config.n_envs, torch.Generator().manual_seed(config.seed))
        loop = EnvLoop(envs, actor, EpisodeTracker(config.n_envs, config.stats_window, success_rule(config.env_id)))
        collector = Collector(loop, config, RewardNormalizer(config.n_envs, config.gamma, config.reward_clip))
        loop.reset(seed=config.seed)
        rollout = collector.collect()
    finally:
        envs.close()
    return policy, rollout


def _update(
    agent: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    rollout: Rollout,
    agent_precision: str,
) -> tuple[dict[str, float], torch.nn.Module, torch.optim.Optimizer]:
    """One PPO update (n_epochs passes) of deep copies of `agent` and its `optimizer`, minibatches from seed 0."""
    agent, optimizer = copy.deepcopy((agent, optimizer))  # one deepcopy: the copy's optimizer steps the copy
    generator = torch.Generator().manual_seed(0)
    losses = ppo_update(
        agent, optimizer, rollout, config, config.ent_coef, generator, torch.device("cpu"), agent_precision
    )
    return losses, agent, optimizer


@pytest.mark.parametrize("agent", ["cnn", "lstm"])
def test_bfloat16_update_matches_float32_within_bfloat16_rounding(agent):
    config = _tiny_config(agent, "bfloat16")
    policy, rollout = _collect(config)
    assert policy.precision == "bfloat16"
    for stored in (rollout.logprobs, rollout.values, rollout.advantages, rollout.returns, rollout.initial_state):
        assert stored is not None and stored.dtype == torch.float32

    # A first float32 update moves the policy away from the one that acted (so ratios and approx_kl are not
    # trivially 1 and 0) and fills the optimizer state. The compared update is then one full-batch step, whose
    # losses are computed on these same weights: they differ by forward rounding only. (Over several Adam steps
    # the rounding also changes the steps, Adam amplifying small gradients to lr-sized moves, and the two runs
    # drift apart like two seeds, which the precision experiment measures instead.)
    optimizer = torch.optim.AdamW(
        policy.agent.parameters(), lr=config.lr, eps=config.adam_eps, weight_decay=config.weight_decay, fused=True
    )
    ppo_update(
        policy.agent,
        optimizer,
        rollout,
        config,
        config.ent_coef,
        torch.Generator().manual_seed(1),
        policy.device,
        "float32",
    )
    one_step = dataclasses.replace(config, n_epochs=1, n_minibatches=1)
    full, _, _ = _update(policy.agent, optimizer, one_step, rollout, "float32")
    mixed, trained, trained_optimizer = _update(policy.agent, optimizer, one_step, rollout, "bfloat16")
    # bfloat16 keeps 8 significant bits (relative rounding 2**-8). The value loss 0.5 * mean((v - R)^2) moves by
    # about |v - R| * 2**-8 * |v|, which is large relative to a small loss, hence its absolute bound; the
    # gradient passes through bfloat16 twice more (backward), hence its looser one.
    tolerances = {"policy_loss": 1e-4, "value_loss": 1e-3, "entropy": 1e-4, "approx_kl": 1e-4}
    for key, atol in tolerances.items():
        torch.testing.assert_close(mixed[key], full[key], rtol=2e-2, atol=atol, msg=f"{key}: {mixed} vs {full}")
    torch.testing.assert_close(mixed["grad_norm"], full["grad_norm"], rtol=0.1, atol=0.0)
    assert all(mixed[key] != full[key] for key in tolerances), "bfloat16 changed nothing: autocast did not run"

    assert all(p.dtype == torch.float32 for p in trained.parameters())
    states = [trained_optimizer.state[p] for p in trained.parameters()]
    assert states and all(s["exp_avg"].dtype == s["exp_avg_sq"].dtype == torch.float32 for s in states)


def test_acting_in_bfloat16_returns_float32():
    config = _tiny_config("lstm", "bfloat16")
    envs = make_vec_env(EnvSettings.from_config(config), 2)
    obs, _ = envs.reset(seed=0)
    envs.close()
    policy = build_policy(config, probe_env(config))
    args = (torch.as_tensor(obs), torch.zeros(2, 0), policy.agent.initial_state(2), torch.ones(2, dtype=torch.bool))
    with torch.no_grad():
        mixed = policy.act(*args)
        full = Policy(policy.agent, None, policy.device, "float32").act(*args)
    for m, f in zip(mixed, full, strict=True):
        assert m.dtype == torch.float32
        torch.testing.assert_close(m, f, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("setting", ["precision=float16", "lm_dtype=int8", "lm_compile=yes"])
def test_a_bad_precision_or_compile_setting_is_refused_in_one_line(capsys, tmp_path, setting):
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "helm", "--run-dir", str(run_dir)]
    assert main([*argv, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and setting in err and "expected one of" in err, err
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"fpu", "avx2", "avx512f", "avx512bw"}, "float32"),
        ({"fpu", "avx2", "avx512f", "avx512_bf16"}, "bfloat16"),
        ({"fpu", "avx2", "amx_tile", "amx_bf16"}, "bfloat16"),
        (set(), "float32"),
    ],
)
def test_auto_precision_on_the_cpu_follows_its_bfloat16_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    cpu = torch.device("cpu")
    assert precision.resolve_dtype("auto", cpu) == expected
    assert precision.resolve_dtype("float32", cpu) == "float32"  # an explicit choice is kept
