"""The peer side of the recurrent-baseline parity check: sb3-contrib's RecurrentPPO (CnnLstmPolicy) on the same
environment, with the same PPO settings, logged the same way as shelm's lstm.

shelm's side is a plain sweep; this script trains the peer and writes one folder per seed beside it:

    shelm sweep --agents lstm --envs MiniGrid-MemoryS7-v0 --seeds 3 --steps 1000000 --out runs/evidence/parity
    python experiments/lstm_parity.py --seeds 1 2 3 --steps 1000000 --out runs/evidence/parity-rppo

What is the same: the environment as shelm builds it (`shelm.envs.make_env`: the 56x56x3 RGB partial view), 16
envs, rollouts of 128 steps, 3 epochs of 8 minibatches, lr 3e-4, gamma 0.99, GAE lambda 0.99, clip 0.2,
entropy 0.01, value 0.5, grad norm 0.5 (shelm's defaults for this task, which has no paper preset), one torch
thread. `--lr`, `--ent-coef` and `--n-steps` set the peer to what a shelm run used on another task, e.g. the
KeyCorridorS3R1 check beside `shelm train --env MiniGrid-KeyCorridorS3R1-v0 --agent lstm --set lr=3e-4
--set ent_coef=0.01` (whose preset rollout is 64 steps):

    python experiments/lstm_parity.py --env MiniGrid-KeyCorridorS3R1-v0 --lr 3e-4 --ent-coef 0.01 --n-steps 64 \
        --seeds 1 --steps 500000 --out runs/diag/kc-rppo

Episodes are scored by shelm's own `EpisodeTracker` and the suite's success rule (a positive return on MiniGrid,
averaged over the last 100 episodes) and a metrics row is written after every rollout, as `shelm train` does.
What differs is the peer's encoder and PPO. Both run an actor LSTM 256 and a critic LSTM 256 read by linear heads,
but the peer's LSTMs read NatureCNN -> 512 where shelm's read the papers' 16/32-channel CNN -> 256; the peer cuts
its own sequences (sb3-contrib), uses Adam and raw rewards where shelm uses AdamW and normalised rewards.

Each trial writes DIR/ENV__sb3-rppo__sSEED/{config.json, metrics.jsonl}. A trial that is interrupted starts over
(the peer's checkpoints are pickles, which shelm does not load); one trial of 1M steps takes about an hour of
one core. A finished trial (its last row at the requested steps) is skipped when the command runs again.
Needs the bench extras: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sb3_contrib
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from shelm.acting import EpisodeTracker
from shelm.envs import EnvSettings, make_env, success_rule
from shelm.files import write_json_atomic
from shelm.runs import append_metrics, read_metrics

PEER = "sb3-rppo"
SETTINGS: dict[str, Any] = {
    "n_envs": 16,
    "n_steps": 128,
    "n_epochs": 3,
    "batch_size": 16 * 128 // 8,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.99,
    "clip_range": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}
POLICY_KWARGS = {"lstm_hidden_size": 256, "n_lstm_layers": 1, "shared_lstm": False, "enable_critic_lstm": True}
STATS_WINDOW = 100


class ShelmMetrics(BaseCallback):
    """Scores episodes with shelm's EpisodeTracker and appends a metrics row after every rollout."""

    def __init__(self, run_dir: Path, env_id: str, settings: dict[str, Any]):
        super().__init__()
        self.run_dir = run_dir
        self.steps_per_rollout = settings["n_envs"] * settings["n_steps"]
        self.tracker = EpisodeTracker(settings["n_envs"], STATS_WINDOW, success_rule(env_id))
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        self.tracker.update(self.locals["rewards"], self.locals["dones"], {})
        return True

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        row = {"global_step": self.num_timesteps, **self.tracker.summary(), "episodes": self.tracker.total_episodes}
        append_metrics(self.run_dir, {**row, "sps": self.steps_per_rollout / (now - self.started)})
        self.started = now


def finished(run_dir: Path, steps: int) -> bool:
    rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    return bool(rows) and rows[-1]["global_step"] >= steps


def train_peer(env_id: str, seed: int, steps: int, settings: dict[str, Any], out: Path, command: str) -> Path:
    run_dir = out / f"{env_id}__{PEER}__s{seed}"
    if finished(run_dir, steps):
        print(f"skip   {run_dir.name} (finished)")
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # an interrupted trial starts over
    config = {
        "peer": f"sb3_contrib.RecurrentPPO {sb3_contrib.__version__}",
        "policy": "CnnLstmPolicy",
        "env_id": env_id,
        "seed": seed,
        "total_steps": steps,
        "settings": settings,
        "policy_kwargs": POLICY_KWARGS,
        "torch_threads": torch.get_num_threads(),
        "command": command,
    }
    write_json_atomic(run_dir / "config.json", config)
    envs = make_vec_env(lambda: make_env(EnvSettings(env_id)), n_envs=settings["n_envs"], seed=seed)
    hyper = {k: v for k, v in settings.items() if k != "n_envs"}
    model = RecurrentPPO(
        "CnnLstmPolicy", envs, policy_kwargs=POLICY_KWARGS, device="cpu", seed=seed, verbose=0, **hyper
    )
    print(f"start  {run_dir.name}")
    model.learn(total_timesteps=steps, callback=ShelmMetrics(run_dir, env_id, settings))
    envs.close()
    last = read_metrics(run_dir)[-1]
    print(f"done   {run_dir.name}: success_rate {last['success_rate']:.3f} at {last['global_step']} steps")
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MiniGrid-MemoryS7-v0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--lr", type=float, default=SETTINGS["learning_rate"], help="learning rate (default 3e-4)")
    parser.add_argument("--ent-coef", type=float, default=SETTINGS["ent_coef"], help="entropy bonus (default 0.01)")
    parser.add_argument(
        "--n-steps", type=int, default=SETTINGS["n_steps"], help="rollout steps per env (default 128; 8 minibatches)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/evidence/parity-rppo"))
    args = parser.parse_args()
    settings = {**SETTINGS, "learning_rate": args.lr, "ent_coef": args.ent_coef, "n_steps": args.n_steps}
    settings["batch_size"] = settings["n_envs"] * args.n_steps // 8
    rollout = settings["n_envs"] * args.n_steps
    if args.n_steps < 8 or args.steps < rollout or args.threads < 1:
        print(
            f"--steps {args.steps} / --n-steps {args.n_steps} / --threads {args.threads}: use --n-steps >= 8, "
            f">= {rollout} steps (one rollout) and >= 1 thread",
            file=sys.stderr,
        )
        sys.exit(2)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    command = shlex.join(["python", *sys.argv])
    for seed in args.seeds:
        train_peer(args.env, seed, args.steps, settings, args.out, command)
    print(json.dumps({"out": str(args.out), "finals": [_final(args.out, args.env, s) for s in args.seeds]}))


def _final(out: Path, env_id: str, seed: int) -> float | None:
    rows = read_metrics(out / f"{env_id}__{PEER}__s{seed}")
    return float(np.asarray(rows[-1]["success_rate"])) if rows and rows[-1]["success_rate"] is not None else None


if __name__ == "__main__":
    main()
