"""Peers' training recipes written as shelm settings: what the parity checks (experiments/) and the speed
comparisons (benchmarks/) train shelm's agent with, so that it runs the PPO a peer runs, on the env the peer sees."""

from __future__ import annotations

from typing import Any

CLEANRL_TRXL_ANNEAL_STEPS = 4_096_000
"""Steps over which CleanRL's ppo_trxl anneals its learning rate and entropy coefficient in its command for
MiniGrid-MemoryS9-v0."""


def cleanrl_trxl_settings() -> dict[str, Any]:
    """shelm's settings for CleanRL ppo_trxl's recipe on MiniGrid-MemoryS9-v0, each as the peer sets it (its defaults
    plus its docs' command for that task)."""
    return {
        # the env: 3x3 views of 28-pixel tiles (84x84 frames), episodes cut at 96 steps by gymnasium's time limit
        # (MiniGrid's own max_steps, which scales the success reward, stays the env's)
        "env_kwargs": "agent_view_size=3,max_episode_steps=96",
        "minigrid_tile_size": 28,
        "preset": "none",
        "n_envs": 16,
        "n_steps": 256,
        "n_epochs": 3,
        "n_minibatches": 8,
        # lr 2.75e-4 -> 1e-5 and entropy 1e-4 -> 1e-6 over 4,096,000 steps: half-way at the end of 2,048,000
        "lr": 2.75e-4,
        "lr_decay": "linear",
        "lr_final": 1e-5,
        "ent_coef": 1e-4,
        "ent_decay": "linear",
        "ent_coef_final": 1e-6,
        "decay_steps": CLEANRL_TRXL_ANNEAL_STEPS,
        "gamma": 0.995,
        "gae_lambda": 0.95,
        "clip_coef": 0.1,
        "clip_vloss": True,
        "norm_adv": False,
        "vf_coef": 1.0,  # the peer's 0.5 x squared error = shelm's 1.0 x half the squared error
        "max_grad_norm": 0.25,
        "norm_reward": False,  # the peer learns from raw rewards
        "trxl_layers": 2,
        "trxl_heads": 4,
        "trxl_dim": 256,
        "trxl_memory_length": 64,
        "trxl_positional_encoding": "absolute",
        "precision": "float32",  # the peer computes in float32
    }
