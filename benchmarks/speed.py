"""The speed of shelm's new defaults against the float32 / eager path, side by side in one run.

(a) The frozen LM's step: SmolLM2-135M at full depth (30 blocks), window 255, with 16 and 64 environments:
    ms per step and per env-step of the float32 eager step (`lm_dtype=float32 lm_compile=false`, the path shelm
    had before) and of the new default (`lm_dtype=auto`: bfloat16 where the CPU computes it natively, and the
    prepared, compiled step). Beside them, the floors this benchmark measures on the machine:
    - bandwidth: the step's weight bytes in bfloat16 divided by the read bandwidth (summing a 256 MiB tensor),
      the time to stream the weights once;
    - compute: the step's weight matrix products alone (the same shapes, bfloat16, no attention or anything
      else), the time the machine's matrix units need for the arithmetic.
    The compile time of the new step is reported beside it.
(b) Training SPS on MiniGrid-MemoryS11-v0 with `--preset paper` for cnn, lstm, helm, helmv2 and shelm: each
    trained through `shelm train` in its own process, the old path (`precision=float32 lm_dtype=float32
    lm_compile=false`) and the new defaults (`precision=auto lm_dtype=auto`, and `lm_compile=true`, which is what
    `auto` resolves to for the paper's 2M-step runs), interleaved. SPS is the steps of the iterations after the
    first (which holds the one-off compile) over their duration; `peak_rss_mb`, the process's resident-memory
    high-water mark logged with every iteration, gives its peak and shows whether anything grows.

Run (about 15 minutes on 2 cores, idle machine):

    python benchmarks/speed.py --out /tmp/speed.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from shelm.files import write_atomic
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.prepared_step import prepare_decoder
from shelm.memory.weights import load_language_model
from shelm.precision import cpu_flags, native_bf16, resolve_dtype

ENV_ID = "MiniGrid-MemoryS11-v0"
AGENTS = ("cnn", "lstm", "helm", "helmv2", "shelm")
OLD = ("precision=float32", "lm_dtype=float32", "lm_compile=false")
NEW = ("precision=auto", "lm_dtype=auto", "lm_compile=true")


def read_bandwidth(mib: int = 256, repeats: int = 10) -> float:
    """Bytes per second of summing a float32 tensor far larger than the caches."""
    data = torch.ones(mib * 2**20 // 4)
    data.sum()
    start = time.perf_counter()
    for _ in range(repeats):
        data.sum()
    return data.numel() * 4 * repeats / (time.perf_counter() - start)


def seconds_per_call(call, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def time_lm_step(memory: LanguageModelMemory, n_envs: int, repeats: int) -> tuple[float, float]:
    """(seconds per step with the window full, seconds of the first step: the compile, if any)."""
    memory.reset(n_envs)
    inputs = torch.randn(n_envs, 1, memory.output_dim) * 0.05
    no_start = torch.zeros(n_envs, dtype=torch.bool)
    start = time.perf_counter()
    memory.step(inputs, no_start)
    first = time.perf_counter() - start
    seconds = seconds_per_call(lambda: memory.step(inputs, no_start), memory.mem_len + 2, repeats)
    return seconds, first


def matmul_floor(weights: list[torch.Tensor], n_envs: int, repeats: int) -> float:
    """Seconds of the step's weight products alone, for n_envs rows, in the weights' dtype."""
    rows = [torch.randn(n_envs, w.shape[1]).to(w.dtype) for w in weights]

    def chain() -> None:
        for x, w in zip(rows, weights, strict=True):
            torch.nn.functional.linear(x, w)

    return seconds_per_call(chain, 3, repeats)


def lm_step_section(n_envs_list: list[int], repeats: int) -> list[str]:
    device = torch.device("cpu")
    new_dtype = resolve_dtype("auto", device)
    old = load_language_model("smollm2", "float32").model
    new = load_language_model("smollm2", new_dtype).model
    prepared_bf16 = prepare_decoder(load_language_model("smollm2", "bfloat16").model, torch.bfloat16)
    assert prepared_bf16 is not None
    matrices = [p for p in prepared_bf16.parameters() if p.dim() == 2]
    weight_bytes = sum(p.numel() * p.element_size() for p in prepared_bf16.parameters())
    bandwidth = read_bandwidth()
    lines = [
        f"Read bandwidth (sum of a 256 MiB tensor): **{bandwidth / 1e9:.1f} GB/s**; the step's weights in bfloat16: "
        f"{weight_bytes / 1e6:.0f} MB, so streaming them once takes **{weight_bytes / bandwidth * 1e3:.1f} ms** "
        "(the bandwidth floor).",
        f"New default on this machine: lm_dtype=auto -> {new_dtype} (bfloat16 units: "
        f"{', '.join(sorted(set(cpu_flags()) & {'amx_bf16', 'avx512_bf16'})) or 'none'}), prepared + compiled step.",
        "",
        "| envs | float32 eager ms/step | new ms/step | float32 eager ms/env-step | new ms/env-step | new / old | "
        "bandwidth floor ms | new / bandwidth floor | compute floor ms (bf16 products alone) | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    per_env = {}
    for n_envs in n_envs_list:
        old_s, _ = time_lm_step(LanguageModelMemory(old, 255), n_envs, repeats)
        new_s, first = time_lm_step(LanguageModelMemory(new, 255, compile=True), n_envs, repeats)
        compute = matmul_floor(matrices, n_envs, repeats)
        floor = weight_bytes / bandwidth
        per_env[n_envs] = new_s / n_envs
        lines.append(
            f"| {n_envs} | {old_s * 1e3:.1f} | {new_s * 1e3:.1f} | {old_s * 1e3 / n_envs:.2f} | "
            f"{new_s * 1e3 / n_envs:.2f} | {new_s / old_s:.2f} | {floor * 1e3:.1f} | {new_s / floor:.2f}x | "
            f"{compute * 1e3:.1f} | {first:.0f} |"
        )
    if len(per_env) == 2:
        small, large = sorted(per_env)
        lines += [
            "",
            f"New step, cost per env-step at {large} envs / at {small} envs: **{per_env[large] / per_env[small]:.2f}**",
        ]
    return lines


def train_once(agent: str, settings: tuple[str, ...], iterations: int, threads: int) -> dict:
    """One `shelm train` process; its metrics rows and its peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        batch = 16 * (256 if agent == "cnn" else 128)  # the paper preset's n_steps
        command = [sys.executable, "-m", "shelm.cli", "train", "--env", ENV_ID, "--agent", agent]
        command += ["--steps", str(batch * iterations), "--run-dir", str(run_dir), "--quiet"]
        for setting in (*settings, f"torch_threads={threads}", "checkpoint_every=1000"):
            command += ["--set", setting]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stderr}")
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        config = json.loads((run_dir / "config.json").read_text())
    measured = rows[1:]
    steps = sum(r["global_step"] - p["global_step"] for p, r in zip(rows, measured, strict=False))
    seconds = sum((r["global_step"] - p["global_step"]) / r["sps"] for p, r in zip(rows, measured, strict=False))
    resolved = config["config"]
    return {
        "sps": steps / seconds,
        "peak_rss_mb": rows[-1]["peak_rss_mb"],
        "rss_by_iteration": [round(r.get("peak_rss_mb", 0)) for r in rows],
        "compile_s": sum(r.get("time_compile", 0.0) for r in rows),
        "precision": resolved.get("precision"),
        "lm_dtype": resolved.get("lm_dtype"),
    }


def training_section(agents: list[str], iterations: int, threads: int) -> list[str]:
    results: dict[tuple[str, str], dict] = {}
    for agent in agents:  # old and new of one agent back to back, so background load falls on both alike
        for label, settings in (("old", OLD), ("new", NEW)):
            results[agent, label] = train_once(agent, settings, iterations, threads)
            print(f"  {agent} {label}: {results[agent, label]}", file=sys.stderr, flush=True)
    lines = [
        "| agent | float32 / eager SPS | new SPS | new / old | new: precision, lm_dtype | compile s | "
        "peak RSS old / new MB | new peak RSS after each iteration MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for agent in agents:
        old, new = results[agent, "old"], results[agent, "new"]
        lm = agent not in ("cnn", "lstm")
        lines.append(
            f"| {agent} | {old['sps']:.0f} | {new['sps']:.0f} | **{new['sps'] / old['sps']:.2f}x** | "
            f"{new['precision']}, {new['lm_dtype'] if lm else '-'} | {new['compile_s']:.0f} | "
            f"{old['peak_rss_mb']:.0f} / {new['peak_rss_mb']:.0f} | {', '.join(map(str, new['rss_by_iteration']))} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 64], help="env counts of the LM step (a)")
    parser.add_argument("--repeats", type=int, default=20, help="timed LM steps per measurement")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), help="agents of the training table (b)")
    parser.add_argument("--iterations", type=int, default=4, help="PPO iterations per training run, first unmeasured")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip", choices=["lm", "training"], help="leave out one section")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = [f"Command: `python {shlex.join(sys.argv)}`", ""]
    lines.append(
        f"torch {torch.__version__}, {args.threads} threads, {platform.machine()}, "
        f"bfloat16 native on this CPU: {native_bf16(torch.device('cpu'))}; load average at start: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if args.skip != "lm":
        lines += ["", "### (a) The LM step: SmolLM2-135M, 30 blocks, window 255", ""]
        lines += lm_step_section(args.envs, args.repeats)
    if args.skip != "training":
        lines += ["", f"### (b) Training SPS, {ENV_ID}, `--preset paper`, 16 envs", ""]
        lines += training_section(args.agents, args.iterations, args.threads)
    lines += ["", f"Load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text.encode())


if __name__ == "__main__":
    main()
