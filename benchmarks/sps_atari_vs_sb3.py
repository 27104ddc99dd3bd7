"""Training throughput on an Atari game: shelm's PPO against Stable-Baselines3's, on ALE/Pong-v5, in one process.

What it measures: environment steps per second of wall time for PPO training (rollout collection and the PPO update
together), the companion of `sps_vs_sb3.py` (MiniGrid) for a user's own pixel env. Rows:

  sb3-cnn          stable_baselines3.PPO("CnnPolicy", env): NatureCNN on SB3's standard Atari preprocessing,
                   `make_atari_env` (AtariWrapper: no-op starts, fire on reset, episodic life, 84x84 grey frames,
                   clipped rewards) and VecFrameStack(4), as SB3's zoo trains Atari: 84x84x4 frames
  shelm-cnn        `shelm train --env ale_py:ALE/Pong-v5 --agent cnn`: the papers' CNN on shelm's default
                   preprocessing (`obs_resize=auto`: 64x64 RGB frames, the size of Procgen's)
  shelm-cnn-84     the same CNN on 84x84x3 frames (`--set obs_resize=84x84`, Atari's usual size)
  shelm-cnn-grey4  the same with `--set obs_resize=84x84 --set obs_grayscale=true --set obs_frame_stack=4`:
                   84x84x4 frames like SB3's
  shelm-cnn-native the same CNN on ALE's 210x160x3 frames (`--set obs_resize=none`: what shelm did before);
                   run only when `--rows` names it
  shelm-helm       `--agent helm --set lm_layers=2`: HELM's FrozenHopfield and the packaged SmolLM2 cut to its
                   first 2 blocks, on the default preprocessing

The env is the same in every row: ALE/Pong-v5 as ale-py registers it (4 emulator frames per step inside ALE, sticky
actions 0.25). SB3's AtariWrapper is therefore given frame_skip=1: its own max-and-skip over 4 frames would make it
16 emulator frames per step (SB3's documentation writes its wrapper for NoFrameskip-v4 ids).

Every row does the same PPO work, SB3 zoo's Atari hyperparameters: 8 synchronous envs (gymnasium SyncVectorEnv in
shelm, SB3's DummyVecEnv), rollouts of 128 steps, 4 epochs of 4 minibatches of 256 steps, gamma 0.99, GAE lambda
0.95, clip 0.1, entropy 0.01, value 0.5, grad norm 0.5, lr 2.5e-4, on the CPU, all rows with the same torch threads.
Each row keeps its framework's defaults otherwise (shelm: bfloat16 autocast where the CPU computes it natively,
reward normalisation; SB3: float32).

How: as in `sps_vs_sb3.py`. One iteration is one rollout of 8 x 128 = 1024 steps plus its update; a row trains W
warm-up iterations then N measured ones; shelm's `sps` metric times each iteration from the rollout's start to the
update's end, SB3's from one rollout start to the next. Rows run interleaved, `--repeats` times, so that background
load falls on all alike; the table reports the median over repeats. Model and env construction are never timed.

Run (about 10 minutes on 2 loaded cores):

    python benchmarks/sps_atari_vs_sb3.py --repeats 2 --threads 1

Needs the bench extras (`pip install -e ".[bench]"`) and ale-py (in the test extras).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import ale_py
import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from sps_vs_sb3 import RolloutClock
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
from training import (
    bf16_units,
    compare_and_report,
    iteration_seconds,
    markdown_table,
    training_rows,
)

from shelm.precision import cpu_model, native_bf16

gym.register_envs(ale_py)
GAME = "ALE/Pong-v5"
SEED = 0
N_ENVS, N_STEPS, N_EPOCHS, MINIBATCH = 8, 128, 4, 256
BATCH = N_ENVS * N_STEPS
LR, CLIP = 2.5e-4, 0.1
# Keyword arguments spelled the same in shelm's TrainConfig and in SB3's PPO.
SHARED_PPO: dict[str, float] = {
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}

Measure = Callable[[int, int], list[float]]
"""(warmup, iterations) -> wall-clock durations in seconds of the `iterations` measured PPO iterations."""


def measure_shelm(agent: str, settings: dict[str, object], warmup: int, iterations: int) -> list[float]:
    shared = {
        "preset": "none",
        "seed": SEED,
        "total_steps": BATCH * (warmup + iterations),
        "n_envs": N_ENVS,
        "n_steps": N_STEPS,
        "n_epochs": N_EPOCHS,
        "n_minibatches": BATCH // MINIBATCH,
        "lr": LR,
        "clip_coef": CLIP,
        "device": "cpu",
        **SHARED_PPO,
    }
    config, rows = training_rows(f"ale_py:{GAME}", agent, {**shared, **settings}, "benchmarks/sps_atari_vs_sb3.py")
    return iteration_seconds(config, rows, warmup)


def measure_sb3(warmup: int, iterations: int) -> list[float]:
    env = VecFrameStack(make_atari_env(GAME, n_envs=N_ENVS, seed=SEED, wrapper_kwargs={"frame_skip": 1}), 4)
    model = PPO(
        "CnnPolicy",
        env,
        learning_rate=LR,
        n_steps=N_STEPS,
        batch_size=MINIBATCH,
        n_epochs=N_EPOCHS,
        clip_range=CLIP,
        device="cpu",
        seed=SEED,
        verbose=0,
        **SHARED_PPO,
    )
    clock = RolloutClock()
    model.learn(total_timesteps=BATCH * (warmup + iterations + 1), callback=clock)
    env.close()
    return np.diff(clock.starts)[warmup:].tolist()


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    network: str
    measure: Measure


ROWS = [
    Row("sb3-cnn", "sb3 PPO CnnPolicy", "84x84x4 grey; NatureCNN 32-64-64 -> 512; linear pi / vf", measure_sb3),
    Row(
        "shelm-cnn",
        "shelm cnn",
        "64x64x3 RGB (obs_resize=auto, Procgen's size); CNN 64-128 -> 1024; heads pi 128 / vf 512",
        partial(measure_shelm, "cnn", {}),
    ),
    Row(
        "shelm-cnn-84",
        "shelm cnn, 84x84",
        "84x84x3 RGB (obs_resize=84x84, Atari's usual size); CNN 64-128 -> 1024; heads pi 128 / vf 512",
        partial(measure_shelm, "cnn", {"obs_resize": "84x84"}),
    ),
    Row(
        "shelm-cnn-grey4",
        "shelm cnn, 84x84 grey x4",
        "84x84x4 grey (obs_resize=84x84, obs_grayscale, obs_frame_stack=4, SB3's frames); CNN 64-128 -> 1024",
        partial(measure_shelm, "cnn", {"obs_resize": "84x84", "obs_grayscale": True, "obs_frame_stack": 4}),
    ),
    Row(
        "shelm-cnn-native",
        "shelm cnn, 210x160 (before)",
        "210x160x3 RGB (obs_resize=none: ALE's frames, as shelm ran them before obs_resize); CNN 64-128 -> 1024",
        partial(measure_shelm, "cnn", {"obs_resize": "none"}),
    ),
    Row(
        "shelm-helm",
        "shelm helm, lm_layers=2",
        "64x64x3 RGB (obs_resize=auto); CNN as shelm cnn + FrozenHopfield -> SmolLM2 (2 of 30 blocks, window 255)",
        partial(measure_shelm, "helm", {"lm_layers": 2}),
    ),
]
ROW_BY_KEY = {row.key: row for row in ROWS}
# The rows run unless --rows names others: all but the slow before-row (about 5x shelm-cnn's time).
DEFAULT_ROWS = [row.key for row in ROWS if row.key != "shelm-cnn-native"]
# (row, against, the target ratio where one is set: shelm's defaults against SB3's, HELM against its CNN)
RATIOS: list[tuple[str, str, float | None]] = [
    ("shelm-cnn", "sb3-cnn", 1.0),
    ("shelm-cnn-84", "sb3-cnn", None),
    ("shelm-cnn-grey4", "sb3-cnn", None),
    ("shelm-helm", "shelm-cnn", 0.3),
    ("shelm-cnn", "shelm-cnn-native", None),
]


def report(args: argparse.Namespace, rows: list[Row], sps: dict[str, list[float]], load: list[str]) -> str:
    median = {key: statistics.median(values) for key, values in sps.items()}
    lines = [
        f"Training throughput on {GAME}, {N_ENVS} sync envs x {N_STEPS} steps, {N_EPOCHS} epochs x "
        f"{BATCH // MINIBATCH} minibatches, CPU; {args.warmup} warm-up + {args.iterations} measured iterations per "
        f"run, {args.repeats} interleaved repeat(s).",
        "",
        *markdown_table(
            ["row", "frames and network", "SPS (median)", "SPS of each repeat"],
            [
                [row.label, row.network, f"{median[row.key]:.0f}", ", ".join(f"{v:.0f}" for v in sps[row.key])]
                for row in rows
            ],
        ),
    ]
    ratios = [(a, b, target) for a, b, target in RATIOS if a in median and b in median]
    if ratios:
        lines += [
            "",
            *markdown_table(
                ["ratio", "measured", "target"],
                [
                    [
                        f"{ROW_BY_KEY[a].label} / {ROW_BY_KEY[b].label}",
                        f"{median[a] / median[b]:.2f}",
                        "-" if t is None else f">= {t}",
                    ]
                    for a, b, t in ratios
                ],
            ),
        ]
    lines += [
        "",
        f"- command: `python {shlex.join(sys.argv)}`",
        f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s); stable-baselines3 "
        f"{stable_baselines3.__version__}, ale-py {ale_py.__version__}, gymnasium {gym.__version__}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores, {platform.machine()}); bfloat16 units: {bf16_units()}; "
        f"shelm's precision=auto -> {'bfloat16' if native_bf16(torch.device('cpu')) else 'float32'}",
        f"- load average (1, 5, 15 min) at start: {load[0]}; at end: {load[1]}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured PPO iterations per run (default 1)")
    parser.add_argument("--iterations", type=int, default=3, help="measured PPO iterations per run (default 3)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of every row (default 1)")
    parser.add_argument(
        "--rows", nargs="+", choices=list(ROW_BY_KEY), help=f"rows to run (default: {' '.join(DEFAULT_ROWS)})"
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for every row (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args()
    if args.warmup < 0 or args.iterations < 1 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        parser.error("need --warmup >= 0, --iterations >= 1, --repeats >= 1 and --threads >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [row for row in ROWS if row.key in (args.rows or DEFAULT_ROWS)]
    compare_and_report(rows, args, BATCH, partial(report, args, rows))


if __name__ == "__main__":
    main()
