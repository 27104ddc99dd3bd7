"""The report's sample-efficiency view: how many environment steps each trial took to reach a level of its metric,
and per env and agent variant how many seeds reached it and how soon.

A trial reaches a level at the first logged step s, from the step where it has trained a whole window on, at which
its metric averaged over the rows logged in the trailing window (s - w, s] is at least the level, w being
REACH_WINDOW of its step budget; it never reaches it when no such step comes within the budget. Why smoothed: a
row's success_rate is the mean of the last episodes (up to `stats_window`), so a row near the start, over a handful
of episodes, can read 1.0 by luck, and a curve can touch a level for one row on its way up. Why a window of steps
and not of rows: every agent trained to the same budget is smoothed over the same steps, whatever rows it logs
(n_envs x n_steps apart), as the final score averages the rows of the last 10% of the steps. 2% of the budget (10k
of 500k steps) holds 10-20 rows of shelm's usual trials, and lags a curve that rises through the level by about
half of it (1% of the budget).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from shelm.experiments.report.statistics import MIN_SEEDS, fmt_steps, iqm_with_ci
from shelm.experiments.report.trials import TrialScores
from shelm.inspect.curves import seeds_text

LEVELS = (0.5, 0.8, 0.9)  # the levels of the report's table
REACH_WINDOW = 0.02  # the trailing window a curve is averaged over, as a share of the trial's step budget
NEVER = "never"  # how the report prints a seed that did not reach the level


def steps_to_level(trial: TrialScores, level: float, budget: int | None = None) -> int | None:
    """The step at which `trial` reaches `level` (see the module's docstring), or None when it never does. With
    `budget` below the trial's own (trials compared at the smallest of their budgets), the window is that share of
    `budget`, so every side is smoothed alike, and a step beyond it counts as never; a trial's own last row, which
    may overshoot its budget by part of an iteration, counts."""
    steps, values = trial.steps, trial.values
    horizon = trial.total_steps if budget is None else min(budget, trial.total_steps)
    window = REACH_WINDOW * horizon
    sums = np.concatenate([[0.0], np.cumsum(values)])
    first = np.searchsorted(steps, steps - window, side="right")  # each row's first row in its window
    rows = np.arange(1, len(steps) + 1)
    means = (sums[rows] - sums[first]) / (rows - first)
    reached = (steps >= window) & (means >= level - 1e-9)  # the tolerance keeps a mean of rows at the level at it
    if horizon < trial.total_steps:
        reached &= steps <= horizon
    hits = np.flatnonzero(reached)
    return int(steps[hits[0]]) if len(hits) else None


def reach(steps: list[int | None], reps: int) -> dict[str, Any]:
    """The steps to a level of one variant's seeds (None: never), aggregated: how many reached it, each seed's
    step, and where at least MIN_SEEDS did, the IQM of their steps with its 95% bootstrap CI over those seeds."""
    reached = np.array([s for s in steps if s is not None], dtype=np.float64)
    row: dict[str, Any] = {"seeds": len(steps), "reached": len(reached), "steps": steps, "iqm": None, "ci": None}
    if len(reached) >= MIN_SEEDS:
        point, low, high = iqm_with_ci(reached[:, None], reps)
        row |= {"iqm": point, "ci": [low, high]}
    return row


def reach_text(row: dict[str, Any]) -> str:
    """A `reach` in words: '3 of 3 seeds: IQM 387k [331k, 435k]', or each seed's step where fewer than MIN_SEEDS
    reached it: '2 of 3 seeds: 410k, 530k, never'."""
    counted = f"{row['reached']} of {seeds_text(row['seeds'])}"
    if row["iqm"] is not None:
        low, high = row["ci"]
        return f"{counted}: IQM {fmt_steps(row['iqm'])} [{fmt_steps(low)}, {fmt_steps(high)}]"
    return f"{counted}: " + ", ".join(NEVER if s is None else fmt_steps(s) for s in row["steps"])


def sample_efficiency(trials: list[TrialScores], reps: int) -> dict[str, Any]:
    """The view as JSON-able data: per env and agent variant that remembers (its spec's `has_memory`: a frozen,
    trained or oracle memory) and per peer library's variant, the finished seeds and their `reach` of each level.
    A seed reported twice counts once, as in the final-score table."""
    grouped: dict[tuple[str, str], dict[int, TrialScores]] = defaultdict(dict)
    for t in trials:
        if t.finished and (t.remembers or t.peer):
            grouped[(t.env_id, t.label)][t.seed] = t
    rows = []
    for (env_id, label), by_seed in sorted(grouped.items()):
        runs = [by_seed[seed] for seed in sorted(by_seed)]
        rows.append(
            {
                "env": env_id,
                "agent": label,
                "peer": runs[0].peer,
                "seeds": sorted(by_seed),
                "levels": [
                    {"level": level, **reach([steps_to_level(t, level) for t in runs], reps)} for level in LEVELS
                ],
            }
        )
    return {"levels": list(LEVELS), "window": REACH_WINDOW, "rows": rows}
