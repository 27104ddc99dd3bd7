"""The report's figures: learning curves with CI bands, and final scores with their CIs and seeds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from shelm.experiments.report.statistics import ALL_ENVS, bootstrap_interval
from shelm.experiments.report.trials import TrialScores
from shelm.inspect.curves import on_common_steps, seeds_text

CURVE_POINTS = 60  # bootstrap CIs for a curve are computed at this many steps at most


def _by_env_and_label(trials: list[TrialScores]) -> dict[str, dict[str, list[TrialScores]]]:
    grouped: dict[str, dict[str, list[TrialScores]]] = defaultdict(lambda: defaultdict(list))
    for t in trials:
        if t.finished:
            grouped[t.env_id][t.label].append(t)
    return grouped


def plot_curves(trials: list[TrialScores], metric: str, reps: int, path: Path) -> Path:
    """One panel per env: per agent, the IQM over seeds at each step and its 95% bootstrap CI band."""
    import matplotlib

    matplotlib.use("Agg")
    from rliable import metrics

    from shelm.inspect.figures import curve_panels, finish_curve_panel, save_figure

    grouped = _by_env_and_label(trials)
    labels = sorted({label for by_label in grouped.values() for label in by_label})  # one colour per agent
    fig, axes = curve_panels(len(grouped), max(len(by_label) for by_label in grouped.values()))
    for ax, env_id in zip(axes[0], sorted(grouped), strict=True):
        for label, runs in sorted(grouped[env_id].items()):
            grid, values = on_common_steps([(t.steps, t.values) for t in runs])
            keep = np.unique(np.linspace(0, len(grid) - 1, min(len(grid), CURVE_POINTS)).round().astype(int))
            grid, values = grid[keep], values[:, keep]
            per_step = lambda s: np.array([metrics.aggregate_iqm(s[:, :, i]) for i in range(s.shape[-1])])  # noqa: E731
            points, cis = bootstrap_interval({"x": values[:, None, :]}, per_step, reps)
            color = f"C{labels.index(label) % 10}"
            ax.plot(grid, points["x"], color=color, label=f"{label} ({seeds_text(len(runs))})")
            ax.fill_between(grid, cis["x"][0], cis["x"][1], color=color, alpha=0.2)
        finish_curve_panel(ax, env_id, f"{metric} (IQM, 95% CI)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_final(summary: dict[str, Any], metric: str, path: Path) -> Path:
    """One panel per env (and all envs): per agent the IQM of final scores with its CI, and each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shelm.inspect.figures import save_figure

    envs = list(dict.fromkeys(row["env"] for row in summary["table"]))
    labels = sorted({row["agent"] for row in summary["table"]})
    # One row of agents for every panel, named once at the left, so that long labels do not squeeze the panels.
    size = (4.5 * len(envs), 0.5 * len(labels) + 1.6)
    fig, axes = plt.subplots(1, len(envs), figsize=size, squeeze=False, sharey=True)
    axes[0][0].set_yticks(range(len(labels)), labels)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for row in (r for r in summary["table"] if r["env"] == env_id):
            y = labels.index(row["agent"])
            low, high = row["ci"]
            ax.plot([low, high], [y, y], color="tab:blue", linewidth=6, alpha=0.35, solid_capstyle="butt")
            ax.plot([row["iqm"]], [y], "|", color="tab:blue", markersize=16, markeredgewidth=2)
            dots = np.asarray(row["scores"], dtype=float).mean(axis=-1) if env_id == ALL_ENVS else row["scores"]
            ax.plot(dots, [y] * len(dots), "o", color="black", markersize=3)
        ax.set_title(env_id)
        ax.set_xlabel(f"final {metric} (IQM, 95% CI; dots: seeds)")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
