"""Learning curves of several runs, grouped by (env, agent variant) with seeds aggregated, and a table of final
values.

A run is a folder with config.json and metrics.jsonl: one `shelm train` made, or a peer library's trial written in
the same layout (experiments/lstm_parity.py), whose config.json names the `peer` with its env_id, seed and
total_steps; a peer's runs are labelled with the peer's name, e.g. "sb3_contrib.RecurrentPPO".
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shelm.agents import get_agent_spec
from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.runs import load_run_config, read_metrics

Group = tuple[str, str]  # (env_id, agent label)
PEER_KEYS = ("peer", "env_id", "seed", "total_steps")  # what a peer library's trial records in its config.json


@dataclass(frozen=True)
class RunIdentity:
    """What a run is, as curves and reports group it."""

    env_id: str
    label: str  # the agent's label (see `agent_label`), or the peer's name
    seed: int
    total_steps: int
    agent: str | None  # the shelm agent's registered name; None for a peer library's run


def run_identity(run_dir: Path) -> RunIdentity:
    """A shelm run's or a peer's identity from its config.json; a peer config lacking a key is refused in one
    line."""
    path = run_dir / "config.json"
    try:
        raw = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raw = None  # load_run_config names the problem
    if not isinstance(raw, dict) or "peer" not in raw:
        config = load_run_config(run_dir)
        return RunIdentity(config.env_id, agent_label(config), config.seed, config.total_steps, config.agent)
    peer, env_id, seed, total_steps = (raw.get(key) for key in PEER_KEYS)
    integers = all(isinstance(n, int) and not isinstance(n, bool) for n in (seed, total_steps))
    if not (isinstance(peer, str) and peer.strip() and isinstance(env_id, str) and integers):
        raise ShelmError(
            f"'{path}' names a peer but not its {', '.join(PEER_KEYS)} (strings, then integers); rewrite it as "
            "experiments/lstm_parity.py writes it"
        )
    return RunIdentity(env_id, peer.split()[0], seed, total_steps, None)


def agent_label(config: TrainConfig) -> str:
    """The agent plus what tells its variants apart (its spec's label), e.g. 'shelm (symbolic oracle, lm_layers=2)'."""
    return get_agent_spec(config.agent).label(config)


def metric_series(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's (steps, values) of `metric`, skipping rows where it is still undefined (no episode yet); both
    empty when there is none yet."""
    rows = [r for r in read_metrics(run_dir) if r.get(metric) is not None]
    if rows and not isinstance(rows[-1][metric], int | float):
        raise ShelmError(f"--metric {metric}: '{run_dir}' has non-numeric values; pick a numeric column")
    steps = np.array([r["global_step"] for r in rows], dtype=np.float64)
    return steps, np.array([r[metric] for r in rows], dtype=np.float64)


def load_groups(run_dirs: list[Path], metric: str) -> dict[Group, list[tuple[np.ndarray, np.ndarray]]]:
    """(steps, values) per run, grouped (see `metric_series`)."""
    groups: dict[Group, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run_dir in run_dirs:
        run = run_identity(run_dir)
        steps, values = metric_series(run_dir, metric)
        if not len(steps):
            raise ShelmError(f"run '{run_dir}' has no '{metric}' values yet; train it first or pick another --metric")
        groups[(run.env_id, run.label)].append((steps, values))
    return dict(groups)


def final_value(steps: np.ndarray, values: np.ndarray, tail: float = 0.1) -> float:
    """A run's final performance: the metric averaged over the last `tail` fraction of its training steps."""
    return float(values[steps > steps[-1] * (1 - tail)].mean())


def on_common_steps(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate every run onto the steps of the shortest one: [seeds, steps]."""
    end = min(steps[-1] for steps, _ in runs)
    grid = min((steps for steps, _ in runs), key=len)
    grid = grid[grid <= end]
    return grid, np.stack([np.interp(grid, steps, values) for steps, values in runs])


def final_table(groups: dict[Group, list[tuple[np.ndarray, np.ndarray]]], metric: str, tail: float = 0.1) -> str:
    """Markdown: per group, the metric averaged over the last `tail` fraction of training, mean ± std over seeds."""
    lines = [
        f"| env | agent | seeds | steps | final {metric} (mean ± std over seeds) |",
        "|---|---|---|---|---|",
    ]
    for (env_id, agent), runs in sorted(groups.items()):
        finals = [final_value(steps, values, tail) for steps, values in runs]
        steps = int(min(s[-1] for s, _ in runs))
        lines.append(f"| {env_id} | {agent} | {len(runs)} | {steps:,} | {np.mean(finals):.3f} ± {np.std(finals):.3f} |")
    return "\n".join(lines)


def seeds_text(count: int) -> str:
    """'1 seed', '3 seeds'."""
    return f"{count} seed" if count == 1 else f"{count} seeds"


def plot_curves(groups: dict[Group, list[tuple[np.ndarray, np.ndarray]]], metric: str, out: Path) -> None:
    """One panel per env; per agent the mean over seeds with the min-max range shaded."""
    import matplotlib

    matplotlib.use("Agg")

    from shelm.inspect.figures import curve_panels, finish_curve_panel, save_figure

    envs = sorted({env for env, _ in groups})
    fig, axes = curve_panels(len(envs), max(sum(group_env == env for group_env, _ in groups) for env in envs))
    for ax, env in zip(axes[0], envs, strict=True):
        for (group_env, agent), runs in sorted(groups.items()):
            if group_env != env:
                continue
            grid, values = on_common_steps(runs)
            ax.plot(grid, values.mean(0), label=f"{agent} ({seeds_text(len(runs))})")
            ax.fill_between(grid, values.min(0), values.max(0), alpha=0.25)
        finish_curve_panel(ax, env, metric)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
