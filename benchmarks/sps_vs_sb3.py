"""Training throughput of shelm's PPO against Stable-Baselines3 / sb3-contrib, in one process.

What it measures: environment steps per second of wall time for PPO training (rollout collection and the
PPO update together) on MiniGrid-MemoryS11-v0 as shelm sees it (`shelm.envs.make_env`, the 56x56x3 RGB
partial view), for six rows:

  shelm-cnn          shelm's CNN-PPO (agent "cnn", started as `shelm train` starts a run: benchmarks/training.py)
  shelm-lstm         shelm's Impala-PPO (agent "lstm")
  sb3-ppo            stable_baselines3.PPO("CnnPolicy"), default NatureCNN
  sb3-ppo-shelmcnn   stable_baselines3.PPO with shelm's CNN encoder as features extractor: the same network
                     as shelm-cnn, so the gap is framework overhead
  sb3-rppo           sb3_contrib.RecurrentPPO("CnnLstmPolicy"), default NatureCNN, LSTM 256
  sb3-rppo-shelmcnn  RecurrentPPO with shelm's Impala CNN (16-32 ch -> 256), actor and critic LSTMs 256 and
                     linear heads: the same network as shelm-lstm

Every row does the same PPO work per step: 16 synchronous envs (gymnasium SyncVectorEnv in shelm, SB3's
DummyVecEnv), rollouts of 128 steps, 3 epochs of 8 minibatches (256 steps each), gamma 0.99, GAE lambda
0.99, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, lr 3e-4, on the CPU with one torch thread count.

How: one iteration is one rollout of 16 x 128 = 2048 steps plus its update. Each row trains for W warm-up
iterations, then N measured ones (`--warmup`, `--iterations`).
- shelm: `train` logs `sps` = 2048 / (duration of the iteration) per row of metrics.jsonl, timed from the start
  of the rollout to the end of the update; the measured durations are those of rows W+1 .. W+N. The final
  checkpoint, metrics and TensorBoard writes fall outside these windows.
- SB3: a callback records `time.perf_counter()` at every `_on_rollout_start`; an iteration lasts from one
  rollout start to the next (so it includes SB3's logger dump, which prints nothing at verbose=0). `learn`
  runs W + N + 1 iterations so that N complete durations follow the warm-up.
A row's SPS is 2048 * N / (sum of its N measured durations). Rows run interleaved (every row once, then
every row again, `--repeats` times) so that background load falls on all alike; the table reports the
median over repeats. Model and env construction are never timed.

Run (the full measurement; with the default iterations a repeat of all six rows trains 28 of them, 57k steps):

    python benchmarks/sps_vs_sb3.py --repeats 3 --out docs/benchmarks-sb3.md

`--rows shelm-cnn sb3-ppo-shelmcnn` runs a subset, `--threads N` sets torch's intra-op threads for all rows.
Measure on an otherwise idle machine: when other processes hold the cores, torch's default of one thread per
core oversubscribes them and every row slows down several-fold (`--threads 1` is then the more stable choice).
Needs the bench extras: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import sb3_contrib
import stable_baselines3
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from training import compare_and_report, iteration_seconds, markdown_table, training_rows

from shelm.agents.encoders import CNNEncoder
from shelm.envs import EnvSettings, make_env
from shelm.precision import cpu_model

ENV_ID = "MiniGrid-MemoryS11-v0"
TILE_SIZE = 8
SEED = 0
N_ENVS, N_STEPS, N_EPOCHS, N_MINIBATCHES = 16, 128, 3, 8
BATCH = N_ENVS * N_STEPS
LR, CLIP = 3e-4, 0.2
# Keyword arguments spelled the same in shelm's TrainConfig and in SB3's constructors.
SHARED_PPO: dict[str, float] = {
    "gamma": 0.99,
    "gae_lambda": 0.99,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}

Measure = Callable[[int, int], list[float]]
"""(warmup, iterations) -> wall-clock durations in seconds of the `iterations` measured PPO iterations."""


def measure_shelm(agent: str, warmup: int, iterations: int) -> list[float]:
    settings = {
        "preset": "none",
        "seed": SEED,
        "total_steps": BATCH * (warmup + iterations),
        "n_envs": N_ENVS,
        "minigrid_tile_size": TILE_SIZE,
        "n_steps": N_STEPS,
        "n_epochs": N_EPOCHS,
        "n_minibatches": N_MINIBATCHES,
        "lr": LR,
        "clip_coef": CLIP,
        "device": "cpu",
        **SHARED_PPO,
    }
    config, rows = training_rows(ENV_ID, agent, settings, "benchmarks/sps_vs_sb3.py")
    return iteration_seconds(config, rows, warmup)


class RolloutClock(BaseCallback):
    """Records the time at which every rollout starts; consecutive starts delimit one PPO iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def _on_rollout_start(self) -> None:
        self.starts.append(time.perf_counter())

    def _on_step(self) -> bool:
        return True


class ShelmCNNExtractor(BaseFeaturesExtractor):
    """shelm's `CNNEncoder` (same layers, channels-last conv weights and init) as an SB3 features extractor.

    CNNEncoder.forward turns uint8 HxWxC frames into float CxHxW / 255 before its first conv. SB3 has already
    done exactly that (VecTransposeImage transposes to CxHxW, preprocess_obs divides by 255), so forward runs
    the encoder's layers on SB3's tensor directly: undoing SB3's preprocessing to call CNNEncoder.forward would
    add a permute copy and a multiply per call that neither framework otherwise pays.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels: tuple[int, int], features: int) -> None:
        super().__init__(observation_space, features)
        c, h, w = observation_space.shape
        self.encoder = CNNEncoder((h, w, c), channels=channels, features=features)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder.linear(self.encoder.convs(observations)))


def shelm_cnn_policy_kwargs(channels: tuple[int, int], features: int) -> dict[str, Any]:
    return {
        "features_extractor_class": ShelmCNNExtractor,
        "features_extractor_kwargs": {"channels": channels, "features": features},
        # shelm's heads: actor 128 and critic 512 hidden units with ReLU (SB3 has no LayerNorm option).
        "net_arch": {"pi": [128], "vf": [512]},
        "activation_fn": nn.ReLU,
        # SB3's orthogonal re-init cannot write into channels-last conv weights (view error); it would only
        # change initial values, not the compute, so the encoder keeps shelm's init.
        "ortho_init": False,
    }


def measure_sb3(
    algo: type[OnPolicyAlgorithm], policy: str, policy_kwargs: dict[str, Any], warmup: int, iterations: int
) -> list[float]:
    env = make_vec_env(lambda: make_env(EnvSettings(ENV_ID, tile_size=TILE_SIZE)), n_envs=N_ENVS, seed=SEED)
    model = algo(
        policy,
        env,
        learning_rate=LR,
        n_steps=N_STEPS,
        batch_size=BATCH // N_MINIBATCHES,
        n_epochs=N_EPOCHS,
        clip_range=CLIP,
        policy_kwargs=policy_kwargs,
        device="cpu",
        seed=SEED,
        verbose=0,
        **SHARED_PPO,
    )
    clock = RolloutClock()
    model.learn(total_timesteps=BATCH * (warmup + iterations + 1), callback=clock)
    env.close()
    return np.diff(clock.starts)[warmup:].tolist()


# sb3-contrib's defaults, spelled out: the critic runs its own LSTM over the shared CNN features, as in shelm's
# lstm agent, so both compute two LSTMs per step.
RPPO_LSTM = {"lstm_hidden_size": 256, "n_lstm_layers": 1, "shared_lstm": False, "enable_critic_lstm": True}
# shelm's lstm reads each LSTM with one linear layer, as RecurrentPPO's default heads do.
LINEAR_HEADS = {"net_arch": {"pi": [], "vf": []}}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    network: str
    measure: Measure


ROWS = [
    Row(
        "shelm-cnn",
        "shelm cnn",
        "CNN 64-128 -> 1024; heads pi 128 / vf 512 (LayerNorm, ReLU)",
        partial(measure_shelm, "cnn"),
    ),
    Row(
        "shelm-lstm",
        "shelm lstm",
        "CNN 16-32 -> 256 -> actor LSTM 256 + critic LSTM 256; linear pi / vf",
        partial(measure_shelm, "lstm"),
    ),
    Row(
        "sb3-ppo",
        "sb3 PPO CnnPolicy",
        "NatureCNN 32-64-64 -> 512; linear pi / vf",
        partial(measure_sb3, PPO, "CnnPolicy", {}),
    ),
    Row(
        "sb3-ppo-shelmcnn",
        "sb3 PPO + shelm CNN",
        "shelm CNN 64-128 -> 1024; pi [128] / vf [512] (ReLU)",
        partial(measure_sb3, PPO, "CnnPolicy", shelm_cnn_policy_kwargs((64, 128), 1024)),
    ),
    Row(
        "sb3-rppo",
        "RecurrentPPO CnnLstmPolicy",
        "NatureCNN -> 512 -> actor LSTM 256 + critic LSTM 256; linear pi / vf",
        partial(measure_sb3, RecurrentPPO, "CnnLstmPolicy", RPPO_LSTM),
    ),
    Row(
        "sb3-rppo-shelmcnn",
        "RecurrentPPO + shelm Impala CNN",
        "shelm CNN 16-32 -> 256 -> actor LSTM 256 + critic LSTM 256; linear pi / vf",
        partial(
            measure_sb3,
            RecurrentPPO,
            "CnnLstmPolicy",
            {**RPPO_LSTM, **shelm_cnn_policy_kwargs((16, 32), 256), **LINEAR_HEADS},
        ),
    ),
]
ROW_BY_KEY = {row.key: row for row in ROWS}
RATIOS = [
    ("shelm-cnn", "sb3-ppo"),
    ("shelm-cnn", "sb3-ppo-shelmcnn"),
    ("shelm-lstm", "sb3-rppo"),
    ("shelm-lstm", "sb3-rppo-shelmcnn"),
]


def report(args: argparse.Namespace, rows: list[Row], sps: dict[str, list[float]], load: list[str]) -> str:
    median = {key: statistics.median(values) for key, values in sps.items()}
    lines = [
        f"Training throughput on {ENV_ID} (56x56x3 RGB view), {N_ENVS} sync envs x {N_STEPS} steps, "
        f"{N_EPOCHS} epochs x {N_MINIBATCHES} minibatches, CPU; {args.warmup} warm-up + {args.iterations} "
        f"measured iterations per run, {args.repeats} interleaved repeat(s).",
        "",
        *markdown_table(
            ["row", "network", "SPS (median)", "SPS of each repeat"],
            [
                [row.label, row.network, f"{median[row.key]:.0f}", ", ".join(f"{v:.0f}" for v in sps[row.key])]
                for row in rows
            ],
        ),
    ]
    ratios = [(a, b) for a, b in RATIOS if a in median and b in median]
    if ratios:
        header = [f"{ROW_BY_KEY[a].label} / {ROW_BY_KEY[b].label}" for a, b in ratios]
        lines += ["", *markdown_table(header, [[f"{median[a] / median[b]:.2f}" for a, b in ratios]])]
    lines += [
        "",
        f"- command: `python {shlex.join(sys.argv)}`",
        f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s); "
        f"stable-baselines3 {stable_baselines3.__version__}, sb3-contrib {sb3_contrib.__version__}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores, {platform.machine()})",
        f"- load average (1, 5, 15 min) at start: {load[0]}; at end: {load[1]}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured PPO iterations per run (default 1)")
    parser.add_argument("--iterations", type=int, default=3, help="measured PPO iterations per run (default 3)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of every row (default 1)")
    parser.add_argument("--rows", nargs="+", choices=list(ROW_BY_KEY), help="rows to run (default: all)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for every row (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args()
    if args.warmup < 0 or args.iterations < 1 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        parser.error("need --warmup >= 0, --iterations >= 1, --repeats >= 1 and --threads >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [row for row in ROWS if args.rows is None or row.key in args.rows]
    compare_and_report(rows, args, BATCH, partial(report, args, rows))


if __name__ == "__main__":
    main()
