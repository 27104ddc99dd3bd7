"""The report's statistics: IQMs and probabilities of improvement with stratified-bootstrap CIs (rliable), the
one-sided rank-sum decision shared by the comparison table and the claims, and `summarize`, every number of the
report as JSON-able data."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from typing import Any

import numpy as np

from shelm.errors import ShelmError
from shelm.experiments.report.trials import TrialScores

# The rank-sum test's level: "higher" when its one-sided p-value is at most ALPHA (an exact test then wrongly says
# higher with probability at most ALPHA). 3 seeds against 3 can reach it (smallest p 1/20); 2 against 3 cannot.
ALPHA = 0.05
ALL_ENVS = "all envs"
# A statistic over seeds is a claim about a method, not a run: an IQM of one or two seeds is those runs' mean, which
# cannot tell the method from a lucky or an unlucky seed, so a claim is decided, and a step count aggregated, on
# this many seeds or more.
MIN_SEEDS = 3


def fmt(value: float) -> str:
    """A score as the report prints it."""
    return f"{value:.3f}"


def fmt_steps(steps: float) -> str:
    """A count of environment steps as the report prints it, to about 3 significant digits: 512, 4.1k, 331k, 1.23M."""
    if steps >= 999_500:
        return f"{steps / 1e6:.3g}M"
    if steps >= 9_950:
        return f"{steps / 1e3:.0f}k"
    if steps >= 999.5:
        return f"{steps / 1e3:.1f}k"
    return f"{steps:.0f}"


def bootstrap_interval(score_dict: dict[str, Any], func: Any, reps: int, seed: int = 0) -> tuple[dict, dict]:
    """rliable's stratified-bootstrap estimates, the same on every run for the same scores. rliable's resampling
    draws from numpy's global generator whatever random_state it is given, so that generator is seeded for the call
    and put back as it was after it."""
    from rliable import library

    outside = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch 7 warns about the random_state that rliable passes it
            warnings.simplefilter("ignore", FutureWarning)
            return library.get_interval_estimates(score_dict, func, reps=reps, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(outside)


def iqm_with_ci(scores: np.ndarray, reps: int) -> tuple[float, float, float]:
    """IQM of [runs, tasks] scores and its 95% stratified-bootstrap CI (point, low, high)."""
    from rliable import metrics

    points, cis = bootstrap_interval({"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps)
    return float(points["x"][0]), float(cis["x"][0, 0]), float(cis["x"][1, 0])


def improvement_with_ci(x: np.ndarray, y: np.ndarray, reps: int) -> tuple[float, float, float]:
    """P(X > Y) of [runs, tasks] score matrices (ties count half), averaged over tasks, with its bootstrap CI."""
    from rliable import metrics

    points, cis = bootstrap_interval({"x,y": [x, y]}, metrics.probability_of_improvement, reps)
    low, high = np.ravel(cis["x,y"])
    return float(points["x,y"]), float(low), float(high)


EXACT_SPLITS = 200_000  # up to this many ways to split the pooled scores, the rank-sum p is exact


def exact_rank_sum_p(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided exact p of the rank-sum test that x scores higher than y: the share of all ways to split the pooled
    scores into groups of len(x) and len(y) whose x-group rank sum (mid-ranks, so ties count half) is at least the
    observed one. Unlike scipy's permutation method it also takes a group of one score."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([x, y]))
    splits = np.array(list(itertools.combinations(range(len(ranks)), len(x))))
    sums = ranks[splits].sum(axis=1)
    return float(np.mean(sums >= ranks[: len(x)].sum() - 1e-9))


def rank_sum_decision(x: np.ndarray, y: np.ndarray) -> dict[str, float | bool]:
    """The report's one decision whether x scores higher than y, shared by its comparison table and its claims.

    A one-sided Wilcoxon rank-sum (Mann-Whitney U) test. For the usual few seeds its p is exact: the share of all
    C(n + m, n) ways to split the pooled scores whose U is at least the observed one, ties included (success rates
    tie often, and the normal approximation scipy falls back to on ties would put p below what so few seeds allow:
    3 seeds all at 1.0 against 3 at 0.0 would get 0.023 instead of 1/20). Returns that p, the smallest p these
    sample sizes allow (every x above every y: 1 / C(n + m, n)), whether x is higher at ALPHA, and whether any
    outcome could have been (so a "no" can be told from too few seeds)."""
    from scipy.stats import mannwhitneyu

    splits = math.comb(len(x) + len(y), len(x))
    if splits <= EXACT_SPLITS:
        p = exact_rank_sum_p(x, y)
    else:
        p = float(mannwhitneyu(x, y, alternative="greater", method="asymptotic").pvalue)
    smallest_p = 1 / splits
    return {"p_value": p, "smallest_p": smallest_p, "higher": p <= ALPHA, "decidable": smallest_p <= ALPHA}


def summarize(
    trials: list[TrialScores], reps: int, planned: list[str], baselines: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Every number of the report, as plain JSON-able data; `planned` names the trials the sweep meant to run;
    `baselines` are labels compared against as baselines beside the memoryless agents."""
    finished = [t for t in trials if t.finished]
    scores: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    memory_labels, labels = set(), set()
    for t in finished:
        scores[t.env_id][t.label][t.seed] = t.final
        labels.add(t.label)
        if t.memory:
            memory_labels.add(t.label)
    envs = sorted(scores)
    table = []
    for env_id in envs:
        for label in sorted(scores[env_id]):
            seeds = scores[env_id][label]
            values = np.array([seeds[s] for s in sorted(seeds)])
            point, low, high = iqm_with_ci(values[:, None], reps)
            table.append(
                {
                    "env": env_id,
                    "agent": label,
                    "seeds": sorted(seeds),
                    "scores": values.tolist(),
                    "iqm": point,
                    "ci": [low, high],
                    "mean": float(values.mean()),
                    "std": float(values.std()),
                }
            )
    # Over all envs: a [seeds, envs] matrix per agent, so each agent needs the same seeds on every env.
    matrices: dict[str, np.ndarray] = {}
    if len(envs) > 1:
        for label in sorted(labels):
            seed_sets = [set(scores[env_id].get(label, {})) for env_id in envs]
            common = sorted(set.intersection(*seed_sets))
            if common and all(s == set(common) for s in seed_sets):
                matrices[label] = np.array([[scores[env_id][label][s] for env_id in envs] for s in common])
        for label, matrix in matrices.items():
            point, low, high = iqm_with_ci(matrix, reps)
            table.append(
                {
                    "env": ALL_ENVS,
                    "agent": label,
                    "seeds": sorted(scores[envs[0]][label]),
                    "scores": matrix.tolist(),
                    "iqm": point,
                    "ci": [low, high],
                    "mean": float(matrix.mean()),
                    "std": float(matrix.mean(1).std()),
                }
            )
    unknown = sorted(set(baselines) - labels)
    if unknown:
        raise ShelmError(
            f"--baseline {unknown[0]!r} is no finished agent of the report; its agents are: {', '.join(sorted(labels))}"
        )
    comparisons = []
    compared = sorted(memory_labels - set(baselines))
    for env_id in [*envs, ALL_ENVS]:
        for memory in compared:
            for baseline in sorted((labels - memory_labels) | set(baselines)):
                if env_id == ALL_ENVS:
                    if memory not in matrices or baseline not in matrices:
                        continue
                    x, y = matrices[memory], matrices[baseline]
                else:
                    if memory not in scores[env_id] or baseline not in scores[env_id]:
                        continue
                    x = np.array(list(scores[env_id][memory].values()))[:, None]
                    y = np.array(list(scores[env_id][baseline].values()))[:, None]
                point, low, high = improvement_with_ci(x, y, reps)
                comparisons.append(
                    {
                        "env": env_id,
                        "memory": memory,
                        "baseline": baseline,
                        "scores": [x.size, y.size],  # tested: one per seed, or per seed and env over all envs
                        "probability_of_improvement": point,
                        "ci": [low, high],
                        **rank_sum_decision(x.ravel(), y.ravel()),
                    }
                )
    return {
        "trials": len(trials),
        "no_run": sorted(set(planned) - {t.name for t in trials}),
        "finished": len(finished),
        "unfinished": [
            {"name": t.name, "global_step": int(t.steps[-1]), "total_steps": t.total_steps}
            for t in trials
            if not t.finished
        ],
        "table": table,
        "comparisons": comparisons,
    }
