"""Cost of the TransformerXL memory (`lm=transfo-xl:DIR`) at the shape of the papers' wt103 model, random weights.

(a) one memory step (n_envs environments, one new position each) for several mem_len, with the size of the
    key/value window it keeps;
(b) the work the original implementation added at every step, and shelm does not: re-projecting the whole
    memory (mem_len + 1 positions per layer) into queries, keys and values, and the relative positions;
(c) with --load: the original files written at full size (legacy pytorch_model.bin, vocab.bin with 267,735
    words), then the time to load them through lm=transfo-xl:DIR, to compute the [V, d] embedding matrix, and to
    read the vocabulary;
(d) with --load --train-iterations N: HELM's training SPS with those files, next to the default smollm2.

Run: python benchmarks/transfo_xl.py --load --train-iterations 3 --out /tmp/bench-txl.md   (~20 min on 2 cores)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from training import training_sps

from shelm.files import write_atomic
from shelm.memory.transfo_xl import TransfoXL, TransfoXLConfig, TransfoXLMemory
from shelm.memory.weights import load_language_model, load_tokenizer

WT103 = {
    "model_type": "transfo-xl",
    "vocab_size": 267_735,
    "cutoffs": [20_000, 40_000, 200_000],
    "d_model": 1024,
    "d_embed": 1024,
    "n_head": 16,
    "d_head": 64,
    "d_inner": 4096,
    "div_val": 4,
    "n_layer": 18,
    "pre_lnorm": False,
    "same_length": True,
    "clamp_len": 1000,
    "attn_type": 0,
    "untie_r": True,
    "mem_len": 1600,
}


def wt103_model(layers: int) -> TransfoXL:
    torch.manual_seed(0)
    model = TransfoXL(TransfoXLConfig.from_dict({**WT103, "n_layer": layers}))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02)
    return model.eval().requires_grad_(False)


def median_seconds(run, repeats: int) -> float:
    """Median over `repeats` timed calls: robust to the spikes of a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_step(memory: TransfoXLMemory, n_envs: int, repeats: int) -> float:
    """Seconds per step. A step computes over every window slot, masked or not, so its cost does not depend on
    how full the window is: three warm-up steps suffice."""
    memory.reset(n_envs)
    inputs = torch.randn(n_envs, 1, memory.output_dim)
    no_start = torch.zeros(n_envs, dtype=torch.bool)
    for _ in range(3):
        memory.step(inputs, no_start)
    return median_seconds(lambda: memory.step(inputs, no_start), repeats)


@torch.no_grad()
def time_reprojection(model: TransfoXL, n_envs: int, mem_len: int, repeats: int) -> float:
    """Seconds per step of what the original recomputed: every layer's qkv_net over mem_len + 1 positions per
    environment and its r_net over mem_len + 1 distances."""
    hidden = torch.randn(n_envs, mem_len + 1, model.config.d_model)
    positions = torch.randn(mem_len + 1, model.config.d_model)

    def reproject() -> None:
        for block in model.layers:
            block.dec_attn.qkv_net(hidden)
            block.dec_attn.r_net(positions)

    return median_seconds(reproject, repeats)


def write_wt103_files(directory: Path, model: TransfoXL) -> None:
    """The release's layout: names with the LM-head model's prefix, legacy torch.save, the vocabulary dict."""
    (directory / "config.json").write_text(json.dumps(WT103))
    state = collections.OrderedDict((f"transformer.{k}", v) for k, v in model.state_dict().items())
    torch.save(state, directory / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    words = ["<eos>", "<unk>", *(f"w{i}" for i in range(WT103["vocab_size"] - 2))]
    vocab = {
        "idx2sym": words,
        "sym2idx": collections.OrderedDict((w, i) for i, w in enumerate(words)),
        "counter": collections.Counter({w: 1 for w in words}),
        "special": ["<eos>"],
    }
    torch.save(vocab, directory / "vocab.bin", _use_new_zipfile_serialization=False)


def part_a_b(model: TransfoXL, args: argparse.Namespace) -> list[str]:
    lines = [f"### (a) memory step, {args.n_envs} envs, float32, 18 layers (median of {args.repeats})", ""]
    lines += ["| mem_len | ms per step | ms per env-step | key/value window (MiB) |", "|---|---|---|---|"]
    times = {}
    for mem_len in args.mem_lens:
        memory = TransfoXLMemory(model, mem_len)
        times[mem_len] = time_step(memory, args.n_envs, args.repeats)
        window = (memory.keys.nbytes + memory.values.nbytes) / 2**20
        ms = times[mem_len] * 1e3
        lines.append(f"| {mem_len} | {ms:.0f} | {ms / args.n_envs:.1f} | {window:.0f} |")
    first, last = args.mem_lens[0], args.mem_lens[-1]
    lines += ["", f"mem_len {last} / mem_len {first}: **{times[last] / times[first]:.2f}x**", ""]

    lines += [f"### (b) re-projecting the memory at every step, as the original did ({args.n_envs} envs)", ""]
    lines += ["| mem_len | re-projection alone, ms per step | / shelm's whole step |", "|---|---|---|"]
    for mem_len in args.mem_lens:
        ms = time_reprojection(model, args.n_envs, mem_len, args.repeats) * 1e3
        lines.append(f"| {mem_len} | {ms:.0f} | {ms / (times[mem_len] * 1e3):.1f}x |")
    return [*lines, ""]


def part_c(directory: Path) -> list[str]:
    size = sum(f.stat().st_size for f in directory.iterdir()) / 2**30
    start = time.perf_counter()
    loaded = load_language_model(f"transfo-xl:{directory}")
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    embeddings = loaded.memory(torch.device("cpu"), 255).embedding_matrix
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    vocabulary = load_tokenizer(f"transfo-xl:{directory}")
    vocab_s = time.perf_counter() - start
    lines = ["### (c) loading full-size files (legacy pytorch_model.bin + vocab.bin)", ""]
    matrix = f"{list(embeddings.shape)}: {embeddings.nbytes / 2**30:.2f} GiB"
    lines += [f"files: {size:.2f} GiB; embedding matrix {matrix}", "", "| step | seconds |", "|---|---|"]
    lines.append(f"| weights (weights_only load, checks, SHA-256) | {load_s:.1f} |")
    lines.append(f"| embedding matrix, first use | {embed_s:.1f} |")
    lines.append(f"| vocabulary ({len(vocabulary)} words) | {vocab_s:.1f} |")
    return [*lines, ""]


def part_d(directory: Path, args: argparse.Namespace) -> list[str]:
    lines = ["### (d) HELM training SPS on MiniGrid-MemoryS11-v0 (16 envs, 128-step rollouts, mem_len 255)", ""]
    lines += ["| lm | SPS |", "|---|---|"]
    sps = {}
    for name, lm in (("TransformerXL, wt103 shape", f"transfo-xl:{directory}"), ("smollm2 (default)", "smollm2")):
        settings = {"preset": "none", "total_steps": args.train_iterations * 16 * 128, "lm": lm, "mem_len": 255}
        settings["torch_threads"] = args.threads  # shelm's defaults otherwise: 16 envs, 128-step rollouts
        sps[name] = training_sps("MiniGrid-MemoryS11-v0", "helm", settings, "benchmarks/transfo_xl.py")
        lines.append(f"| {name} | {sps[name]:.1f} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--mem-lens", type=int, nargs="+", default=[15, 63, 255, 511])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--load", action="store_true", help="also write and load full-size files (part c)")
    parser.add_argument("--train-iterations", type=int, default=0, help="with --load: part d's PPO iterations")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lines = [f"Command: `python {' '.join(sys.argv)}`", ""]
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}")
    lines.append(f"load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    model = wt103_model(WT103["n_layer"])
    params = sum(p.numel() for p in model.parameters())
    lines += [f"wt103 shape without its softmax head: {params / 1e6:.1f} M parameters", ""]
    lines += part_a_b(model, args)
    if args.load:
        with tempfile.TemporaryDirectory() as tmp:
            write_wt103_files(Path(tmp), model)
            del model
            lines += part_c(Path(tmp))
            if args.train_iterations:
                lines += part_d(Path(tmp), args)
    lines.append(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text.encode())


if __name__ == "__main__":
    main()
