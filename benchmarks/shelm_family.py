"""SHELM and HELMv2 next to HELM and CNN-PPO, measured side by side in one process.

(a) training SPS of every agent on the same task and settings (16 envs, 128-step rollouts, a few PPO
    iterations each, the first one dropped as warm-up), with the retrieval memo cache's hit rate;
(b) how well each offline retriever tells observations apart: on frames of random play, the number of
    distinct top-k word sets per distinct observation, and the retriever's cost per frame without the cache;
(c) what words from pixels cost: training SPS of SHELM with retriever=regions beside the same SHELM with the
    symbolic oracle on a MiniGrid task (the paper preset), and beside whole-frame imagenet SHELM on an Atari game
    whose frames rarely repeat, the arms interleaved round by round so that both see the same machine load.

Run: python benchmarks/shelm_family.py --out docs/benchmarks-shelm.md     (about 10 minutes on 2 cores)
     python benchmarks/shelm_family.py --parts c --env MiniGrid-MemoryS11-v0 --lm-layers 2   (about 15 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from training import iteration_seconds, training_rows

from shelm.envs import EnvSettings, make_vec_env
from shelm.files import write_atomic
from shelm.memory.imagenet import ImageNetRetriever
from shelm.memory.retrieval import top_k
from shelm.memory.symbolic import SymbolicRetriever
from shelm.precision import cpu_flags, cpu_model, native_bf16

AGENTS = [
    ("cnn", {}),
    ("helm", {}),
    ("helmv2", {"image_encoder": "imagenet"}),
    ("shelm", {"retriever": "symbolic"}),
    ("shelm", {"retriever": "imagenet"}),
    ("shelm", {"retriever": "regions"}),
]
# Part (c)'s pairs: (env, settings both arms share, the baseline's settings, the pixel retriever's settings).
PIXEL_PAIRS = [
    ("{env}", {}, {"retriever": "symbolic"}, {"retriever": "regions"}),
    (
        "ale_py:ALE/Breakout-v5",
        {"n_envs": 2, "n_steps": 64, "n_minibatches": 2},
        {"retriever": "imagenet"},
        {"retriever": "regions"},
    ),
]


def sps_and_hit_rate(env_id: str, agent: str, steps: int, extra: dict) -> tuple[float, float | None]:
    """(SPS, mean memo hit rate) over all iterations but the first, of a run with the paper preset under `extra`."""
    config, rows = training_rows(env_id, agent, {"total_steps": steps, **extra}, "benchmarks/shelm_family.py")
    seconds = iteration_seconds(config, rows)
    hits = [r["memo_hit_rate"] for r in rows[1:] if "memo_hit_rate" in r]
    return len(seconds) * config.batch_size / sum(seconds), (float(np.mean(hits)) if hits else None)


def random_play(env_id: str, n_envs: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and symbolic views of `steps` uniformly random steps in `n_envs` envs."""
    envs = make_vec_env(EnvSettings(env_id), n_envs)
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
    parser.add_argument(
        "--parts", default="ab", help="which parts to run: a (training SPS), b (retrievers), c (words from pixels)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="part c: interleaved rounds per pair")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"Command: `python {' '.join(sys.argv)}`", ""]
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}")
    bf16_units = sorted(set(cpu_flags()) & {"amx_bf16", "avx512_bf16"})
    lines.append(
        f"bfloat16 units: {', '.join(bf16_units) or 'none (emulated)'}; native bfloat16: "
        f"{native_bf16(torch.device('cpu'))}; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if "a" in args.parts:
        lines += part_a(args)
    if "b" in args.parts:
        lines += part_b(args)
    if "c" in args.parts:
        lines += part_c(args)
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
        sps, hits = sps_and_hit_rate(args.env, agent, steps, settings)
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


def part_c(args: argparse.Namespace) -> list[str]:
    title = f"### (c) words from pixels: training SPS, lm_layers={args.lm_layers}, {args.rounds} interleaved rounds"
    lines = ["", title]
    lines += ["", "Each round trains every arm of a pair for the same iterations (the first dropped as warm-up).", ""]
    lines += ["| env | arm | SPS per round | median SPS | memo hit rate | regions / baseline (median; per round) |"]
    lines.append("|---|---|---|---|---|---|")
    for env_pattern, shared, baseline, pixels in PIXEL_PAIRS:
        env_id = env_pattern.format(env=args.env)
        settings = {**shared, "lm_layers": args.lm_layers}
        steps = args.train_iterations * settings.get("n_envs", 16) * settings.get("n_steps", 128)
        runs: dict[str, list[tuple[float, float | None]]] = {"baseline": [], "regions": []}
        for _ in range(args.rounds):
            runs["baseline"].append(sps_and_hit_rate(env_id, "shelm", steps, {**settings, **baseline}))
            runs["regions"].append(sps_and_hit_rate(env_id, "shelm", steps, {**settings, **pixels}))
        medians = {arm: statistics.median(sps for sps, _ in measured) for arm, measured in runs.items()}
        ratios = [r[0] / b[0] for b, r in zip(runs["baseline"], runs["regions"], strict=True)]
        for arm, extra in (("baseline", baseline), ("regions", pixels)):
            per_round = ", ".join(f"{sps:.0f}" for sps, _ in runs[arm])
            hits = [h for _, h in runs[arm] if h is not None]
            hit_text = f"{statistics.mean(hits):.1%}" if hits else "-"
            ratio = (
                f"{medians['regions'] / medians['baseline']:.2f}x; " + ", ".join(f"{r:.2f}" for r in ratios)
                if arm == "regions"
                else ""
            )
            lines.append(
                f"| {env_id} | shelm retriever={extra['retriever']} | {per_round} | {medians[arm]:.0f} | {hit_text} | "
                f"{ratio} |"
            )
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
