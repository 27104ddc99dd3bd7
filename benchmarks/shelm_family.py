"""SHELM and HELMv2 next to HELM and CNN-PPO, measured side by side in one process.

(a) training SPS of every agent on the same task and settings (16 envs, 128-step rollouts, a few PPO
    iterations each, the first one dropped as warm-up), with the retrieval memo cache's hit rate;
(b) how well each offline retriever tells observations apart: on frames of random play, the number of
    distinct top-k word sets per distinct observation, and the retriever's cost per frame without the cache.

Run: python benchmarks/shelm_family.py --out docs/benchmarks-shelm.md     (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shelm.agents import resolve_config
from shelm.envs import make_vec_env
from shelm.files import write_atomic
from shelm.memory.imagenet import ImageNetRetriever
from shelm.memory.retrieval import top_k
from shelm.memory.symbolic import SymbolicRetriever
from shelm.ppo import train
from shelm.runs import read_metrics

AGENTS = [
    ("cnn", {}),
    ("helm", {}),
    ("helmv2", {"image_encoder": "imagenet"}),
    ("shelm", {"retriever": "symbolic"}),
    ("shelm", {"retriever": "imagenet"}),
]


def training_sps(env_id: str, agent: str, steps: int, extra: dict) -> tuple[float, float | None]:
    """(SPS, mean memo hit rate) over all iterations but the first."""
    with tempfile.TemporaryDirectory() as tmp:
        config, _ = resolve_config(env_id, agent, {"total_steps": steps, "checkpoint_every": 10**9, **extra})
        train(config, Path(tmp))
        rows = read_metrics(Path(tmp))[1:]
        sps = len(rows) * config.batch_size / sum(config.batch_size / r["sps"] for r in rows)
        hits = [r["memo_hit_rate"] for r in rows if "memo_hit_rate" in r]
        return sps, (float(np.mean(hits)) if hits else None)


def random_play(env_id: str, n_envs: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and symbolic views of `steps` uniformly random steps in `n_envs` envs."""
    envs = make_vec_env(env_id, n_envs)
    rng = np.random.default_rng(seed)
    obs, info = envs.reset(seed=seed)
    frames, views = [obs], [info["symbolic_view"]]
    for _ in range(steps - 1):
        obs, _, _, _, info = envs.step(rng.integers(envs.single_action_space.n, size=n_envs))
        frames.append(obs)
        views.append(info["symbolic_view"])
    envs.close()
    return np.concatenate(frames), np.concatenate(views)


def distinct_word_sets(retriever, inputs: torch.Tensor, k: int) -> tuple[int, float]:
    """(distinct top-k word sets, seconds per input) over the given distinct inputs."""
    start = time.perf_counter()
    scores = torch.cat([retriever.scores(inputs[i : i + 32]) for i in range(0, len(inputs), 32)])
    seconds = (time.perf_counter() - start) / len(inputs)
    ids, _ = top_k(scores, k, retriever.pad_item)
    return len({tuple(row) for row in ids.tolist()}), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MiniGrid-MemoryS7-v0")
    parser.add_argument("--lm-layers", type=int, default=0, help="LM blocks kept by every memory agent (0 = all)")
    parser.add_argument("--train-iterations", type=int, default=4)
    parser.add_argument("--play-steps", type=int, default=64)
    parser.add_argument("--parts", default="ab", help="which parts to run: a (training SPS), b (retrievers)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"Command: `python {' '.join(sys.argv)}`", ""]
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}")
    if "a" in args.parts:
        lines += part_a(args)
    if "b" in args.parts:
        lines += part_b(args)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_atomic(args.out, text.encode())


def part_a(args: argparse.Namespace) -> list[str]:
    lines = ["", f"### (a) training SPS on {args.env} (16 envs, 128-step rollouts, lm_layers={args.lm_layers})", ""]
    lines += ["| agent | SPS | / CNN-PPO | memo hit rate |", "|---|---|---|---|"]
    steps = args.train_iterations * 16 * 128
    cnn_sps = None
    for agent, extra in AGENTS:
        settings = extra if agent == "cnn" else {**extra, "lm_layers": args.lm_layers}
        sps, hits = training_sps(args.env, agent, steps, settings)
        cnn_sps = cnn_sps or sps
        name = agent + "".join(f" {k}={v}" for k, v in extra.items())
        hit_text = "-" if hits is None else f"{hits:.1%}"
        lines.append(f"| {name} | {sps:.0f} | {sps / cnn_sps:.2f}x | {hit_text} |")
        print(lines[-1], flush=True)
    return lines


def part_b(args: argparse.Namespace) -> list[str]:
    frames, views = random_play(args.env, 16, args.play_steps, seed=0)
    unique_frames, first = np.unique(frames, axis=0, return_index=True)
    lines = ["", f"### (b) distinct word sets on {len(frames)} frames of random play in {args.env}", ""]
    lines += [f"{len(unique_frames)} distinct observations.", ""]
    lines += ["| retriever | k | distinct word sets | per distinct observation | ms per frame (uncached) |"]
    lines.append("|---|---|---|---|---|")
    imagenet = ImageNetRetriever(torch.device("cpu"))
    symbolic = SymbolicRetriever()
    for name, retriever, inputs in (
        ("imagenet", imagenet, torch.as_tensor(unique_frames)),
        ("symbolic", symbolic, torch.as_tensor(views[first])),
    ):
        for k in (1, 2, 3):
            count, seconds = distinct_word_sets(retriever, inputs, k)
            lines.append(f"| {name} | {k} | {count} | {count / len(unique_frames):.3f} | {seconds * 1e3:.2f} |")
            print(lines[-1], flush=True)
    batches = range(0, len(unique_frames), 32)
    scores = torch.cat([imagenet.scores(torch.as_tensor(unique_frames[i : i + 32])) for i in batches])
    ids, _ = top_k(scores, 3, None)
    common: dict[tuple[str, ...], int] = {}
    for row in ids.tolist():
        words = tuple(imagenet.vocabulary[i] for i in row)
        common[words] = common.get(words, 0) + 1
    top = sorted(common.items(), key=lambda item: -item[1])[:3]
    lines += ["", "Most frequent imagenet top-3 word sets over the distinct observations:", ""]
    lines += [f"- {' / '.join(words)}: {count}" for words, count in top]
    return lines


if __name__ == "__main__":
    main()
