"""How much return survives perturbed observations? (The SHELM paper reports its memory to be more robust to
random perturbations; this makes that checkable for any agent.)

The run is evaluated, greedy and with sampled actions, on the same episodes (same seeds) under Gaussian pixel
noise, random frame drops and random occlusion at increasing strength (see `shelm.envs.perturbations`); level 0
is the plain evaluation. Compare agents with `shelm analyze RUN_A RUN_B ... --what robustness --out DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shelm.envs.perturbations import Perturbation
from shelm.evaluate import EVAL_SEED_OFFSET, MODES, run_episodes
from shelm.inspect.curves import agent_label
from shelm.inspect.figures import Analysis, save_figure
from shelm.progress import PlayProgress

LEVELS = {
    "noise": (0.0, 0.05, 0.1, 0.2, 0.4),
    "drop": (0.0, 0.1, 0.25, 0.5, 0.75),
    "occlude": (0.0, 0.15, 0.3, 0.5, 0.75),
}
TITLES = {
    "noise": "Gaussian pixel noise (std, pixels in [0, 1])",
    "drop": "frame drop probability",
    "occlude": "occluding square (side / frame side)",
}


# The evaluations it plays: the plain one (level 0 of every curve), then each perturbation's other levels.
N_LEVELS = 1 + sum(sum(level != 0 for level in levels) for levels in LEVELS.values())


def _evaluate(analysis: Analysis, perturbation: Perturbation, seed: int, progress: PlayProgress) -> dict[str, Any]:
    results = {}
    for mode in MODES:
        results[mode] = run_episodes(
            analysis.policy,
            analysis.config,
            analysis.episodes,
            mode == "greedy",
            seed,
            perturbation=perturbation,
            max_episode_steps=analysis.max_episode_steps,
            progress=progress,
        )[0]
        analysis.capped += results[mode]["capped"]
    return results


def run(analysis: Analysis) -> dict[str, Any]:
    seed = analysis.config.seed + EVAL_SEED_OFFSET if analysis.seed is None else analysis.seed
    progress = analysis.progress(
        N_LEVELS * len(MODES) * analysis.episodes,
        f"{N_LEVELS} levels x {len(MODES)} modes x {analysis.episodes} episodes",
    )
    clean = _evaluate(analysis, Perturbation(), seed, progress)  # level 0 of every curve: the plain evaluation
    curves = {
        kind: [
            {
                "level": level,
                "spec": Perturbation(**{kind: level}).spec(),
                **(clean if level == 0 else _evaluate(analysis, Perturbation(**{kind: level}), seed, progress)),
            }
            for level in levels
        ]
        for kind, levels in LEVELS.items()
    }
    progress.finish()
    label = agent_label(analysis.config)
    figure = plot({label: curves}, analysis.figure_path("robustness"), analysis.config.env_id)
    return {
        "label": label,
        "actions": "greedy and sampled",
        "episodes": analysis.episodes,
        "seed": seed,
        "curves": curves,
        "figures": [str(figure)],
    }


def plot(curves_by_label: dict[str, dict[str, list[dict[str, Any]]]], path: Path, env_id: str) -> Path:
    """One panel per perturbation: mean return (± standard error) vs strength, a line per run and action mode."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LEVELS), figsize=(4.2 * len(LEVELS), 3.4), squeeze=False)
    for ax, kind in zip(axes[0], LEVELS, strict=True):
        for i, (label, curves) in enumerate(curves_by_label.items()):
            rows = curves[kind]
            levels = [r["level"] for r in rows]
            for mode, style in zip(MODES, ("-", "--"), strict=True):
                mean = np.array([r[mode]["return_mean"] for r in rows])
                sem = np.array([r[mode]["return_std"] / np.sqrt(r[mode]["episodes"]) for r in rows])
                colour = f"C{i}"
                ax.plot(levels, mean, style, color=colour, marker="o", ms=3, label=f"{label} ({mode})")
                ax.fill_between(levels, mean - sem, mean + sem, color=colour, alpha=0.12)
        ax.set_xlabel(TITLES[kind], fontsize=8)
        ax.set_ylabel("mean return", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Return under perturbed observations on {env_id}", fontsize=9)
    return save_figure(fig, path)
