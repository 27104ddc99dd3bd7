"""Throughput of every environment suite, measured side by side in one process.

Per suite, on one task:
(a) raw env steps/s: random actions through shelm's vector env (`make_vec_env`, sync, N copies; Procgen is
    natively batched), resets included;
(b) CNN-PPO training SPS: a few PPO iterations of the cnn agent with the paper settings (16 envs, 128-step
    rollouts), from `metrics.jsonl`, and the ratio (b)/(a): the share of time the env takes.

Run: python benchmarks/envs.py --threads 1 --out docs/benchmarks-envs.md     (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from training import training_sps

from shelm.envs import EnvSettings, make_vec_env
from shelm.files import write_atomic

TASKS = {
    "minigrid": "MiniGrid-MemoryS7-v0",
    "random_maze": "shelm/RandomMaze-v0",
    "procgen": "procgen/maze-memory",
    "miniworld": "MiniWorld-Hallway-v0",
    "memory_gym": "MortarMayhem-Grid-v0",
}


def env_steps_per_second(env_id: str, n_envs: int, steps: int) -> tuple[float, tuple[int, ...]]:
    envs = make_vec_env(EnvSettings(env_id), n_envs)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    n_actions = int(envs.single_action_space.n)
    for _ in range(10):  # warm-up: first renders, caches
        envs.step(rng.integers(n_actions, size=n_envs))
    start = time.perf_counter()
    for _ in range(steps):
        envs.step(rng.integers(n_actions, size=n_envs))
    elapsed = time.perf_counter() - start
    envs.close()
    return n_envs * steps / elapsed, tuple(obs.shape[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(TASKS), help="comma-separated suites (default: all)")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--env-steps", type=int, default=200, help="vector steps for (a)")
    parser.add_argument("--train-iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = [
        f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"{args.n_envs} envs",
        "",
        "| suite | task | frame | raw env steps/s | CNN-PPO training SPS | training / raw |",
        "|---|---|---|---|---|---|",
    ]
    for suite in args.suites.split(","):
        env_id = TASKS[suite]
        raw, shape = env_steps_per_second(env_id, args.n_envs, args.env_steps)
        settings = {"torch_threads": args.threads, "n_steps": 128, "n_envs": 16}
        settings["total_steps"] = args.train_iterations * 128 * 16
        sps = training_sps(env_id, "cnn", settings, "benchmarks/envs.py")
        frame = "x".join(str(n) for n in shape)
        lines.append(f"| {suite} | {env_id} | {frame} | {raw:,.0f} | {sps:,.0f} | {sps / raw:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text.encode())


if __name__ == "__main__":
    main()
