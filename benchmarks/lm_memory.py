"""Cost of the frozen language-model memory, measured side by side in one process.

(a) time of one memory step (16 environments, one new input each) for several mem_len, with the window full;
(b) achieved FLOP rate of that step against this machine's own measured matmul rate, for the full model and
    for lm_layers 2 and 6;
(c) the time of FrozenHopfield's mapping of 16 frames (56x56x3) next to a 2-block LM step;
(d) training SPS of HELM next to CNN-PPO on MiniGrid-MemoryS11-v0 (a few PPO iterations each).

Run: python benchmarks/lm_memory.py --out docs/benchmarks-lm.md     (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from training import training_sps

from shelm.files import write_atomic
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.weights import load_language_model


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large square float32 matmul: the machine's practical peak for dense arithmetic."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def step_flops(config, n_envs: int, mem_len: int) -> float:
    """Multiply-adds x 2 of one step: the linear layers for n_envs tokens plus attention over mem_len + 1 keys."""
    d, layers = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", heads)
    head_dim = d // heads
    inter = getattr(config, "intermediate_size", 4 * d)
    per_layer = d * d * 2 + 2 * d * kv_heads * head_dim + 3 * d * inter  # q, o, k, v, gated MLP
    attention = 2 * heads * head_dim * (mem_len + 1)  # scores and weighted values
    return 2.0 * n_envs * layers * (per_layer + attention)


def time_memory_step(model, n_envs: int, mem_len: int, repeats: int) -> float:
    """Seconds per step with the window already full (the steady state of training)."""
    memory = LanguageModelMemory(model, mem_len)
    memory.reset(n_envs)
    inputs = torch.randn(n_envs, 1, model.config.hidden_size)
    no_start = torch.zeros(n_envs, dtype=torch.bool)
    for _ in range(mem_len + 2):
        memory.step(inputs, no_start)
    start = time.perf_counter()
    for _ in range(repeats):
        memory.step(inputs, no_start)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-iterations", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    lines = [f"Command: `python {' '.join(sys.argv)}`", ""]
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}")
    peak = matmul_rate()
    lines += [f"Measured matmul rate (2048x2048 float32): **{peak / 1e9:.1f} GFLOP/s**", ""]

    model = load_language_model(args.lm).model
    lines += ["### (a) LM memory step time, 16 envs, window full", "", "| mem_len | ms per step | ms per env-step |"]
    lines.append("|---|---|---|")
    times = {}
    for mem_len in (15, 63, 255, 511):
        times[mem_len] = time_memory_step(model, args.n_envs, mem_len, args.repeats)
        lines.append(f"| {mem_len} | {times[mem_len] * 1e3:.1f} | {times[mem_len] * 1e3 / args.n_envs:.2f} |")
    lines += ["", f"mem_len 511 / mem_len 15: **{times[511] / times[15]:.2f}x**", ""]

    lines += ["### (b) achieved FLOP rate at mem_len 255", ""]
    lines += ["| layers | ms per step | GFLOP/s | share of matmul rate |", "|---|---|---|---|"]
    for layers in (0, 6, 2):
        loaded = load_language_model(args.lm, layers=layers)
        seconds = time_memory_step(loaded.model, args.n_envs, 255, args.repeats)
        rate = step_flops(loaded.model.config, args.n_envs, 255) / seconds
        lines.append(f"| {loaded.layers} | {seconds * 1e3:.1f} | {rate / 1e9:.1f} | {rate / peak:.0%} |")
    lines.append("")

    two_blocks = LanguageModelMemory(load_language_model(args.lm, layers=2).model, 255)
    hopfield = FrozenHopfield(two_blocks.embedding_matrix, 56 * 56 * 3, beta=1.0, seed=0)
    frames = torch.randint(0, 256, (args.n_envs, 56, 56, 3), dtype=torch.uint8)
    start = time.perf_counter()
    for _ in range(args.repeats):
        hopfield(frames)
    hopfield_ms = (time.perf_counter() - start) / args.repeats * 1e3
    lm_ms = time_memory_step(two_blocks.model, args.n_envs, 255, args.repeats) * 1e3
    lines += ["### (c) FrozenHopfield vs a 2-block LM step (16 frames of 56x56x3)", ""]
    lines += [f"FrozenHopfield {hopfield_ms:.1f} ms, LM step (lm_layers=2, mem_len 255) {lm_ms:.1f} ms", ""]

    steps = args.train_iterations * args.n_envs * 128
    lines += ["### (d) training SPS on MiniGrid-MemoryS11-v0 (16 envs, 128-step rollouts)", "", "| agent | SPS |"]
    lines.append("|---|---|")
    sps = {  # shelm's defaults (16 envs, 128-step rollouts), not the paper preset
        agent: training_sps(
            "MiniGrid-MemoryS11-v0", agent, {"preset": "none", "total_steps": steps, **extra}, "benchmarks/lm_memory.py"
        )
        for agent, extra in (("cnn", {}), ("helm", {"lm": args.lm, "mem_len": 255}))
    }
    for agent, value in sps.items():
        lines.append(f"| {agent} | {value:.0f} |")
    lines += ["", f"HELM / CNN-PPO: **{sps['helm'] / sps['cnn']:.2f}x**"]

    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text.encode())


if __name__ == "__main__":
    main()
