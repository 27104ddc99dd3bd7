"""`shelm report`: a sweep's trials aggregated the way the papers (and rliable) recommend.

Per trial, the score is the metric averaged over the last 10% of its training steps. Per env and agent:
- the interquartile mean (IQM) over seeds, with a 95% stratified-bootstrap confidence interval (rliable);
- over all envs at once (when every env has the same seeds), the IQM of the [seeds, envs] score matrix, the
  bootstrap stratified by env.
Each memory agent (one with a frozen LM memory) against each baseline (cnn, lstm, and any agent named with
`--baseline`, e.g. the same agent without a setting under test), per env and over all envs:
- the probability of improvement P(memory > baseline) with its bootstrap CI (rliable);
- a one-sided Wilcoxon rank-sum test of "memory scores higher" over the seeds (scipy's Mann-Whitney U, exact for
  small samples), at alpha 0.05.
Learning curves show the IQM over seeds at each step with a CI band. Only trials that reached their step budget
count; unfinished ones are listed. Besides shelm's runs, a folder may hold a peer library's trials written in the
same layout (experiments/lstm_parity.py: config.json naming the `peer`, its env_id, seed and total_steps, and
metrics.jsonl); they are labelled with the peer's name and reported as baselines.

The markdown goes to a new file, or into an existing one between the lines `<!-- shelm report NAME: begin -->` and
`<!-- shelm report NAME: end -->` (NAME: the sweep folder's name), so a hand-written page (docs/results.md) keeps its
text around the numbers and can hold several sweeps.

With `--claims FILE`, a TOML file of `[[claim]]` tables (docs/claims.toml holds the papers' claims this project
tests), each claim gets a verdict from the finished trials of all the folders reported together: a `threshold`
claim holds when an agent's IQM over at least 3 seeds meets `at_least` or `at_most`, or with `in_seeds = N` when at
least N of those seeds each meet it (on fewer than 3 it cannot be decided); a `beats` claim holds when the one-sided
rank-sum test says the agent scores higher than each of `others` at alpha 0.05 (p <= 0.05), and cannot be decided when
every comparison it loses had too few seeds for any outcome to reach that p; a `no_worse` claim (a parity check
against a peer) holds when, against each of `others`, the agent's IQM CI reaches the other's (its upper end at or
above the other's lower end) and the rank-sum test does not say the other scores higher; an `untestable` claim
states why this project cannot test it. A claim whose env or agent has no finished trial is "not measured yet".
The verdicts go into the report's JSON and, as a table, between `<!-- shelm report claims: begin -->` and
`<!-- shelm report claims: end -->` (appended to a new page, refused in an existing one without those lines). A
bad claims file is refused in one line before anything is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import tomllib
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shelm.errors import ShelmError, first_line
from shelm.files import write_atomic, write_json_atomic
from shelm.inspect.curves import final_value, metric_series, on_common_steps, run_identity, seeds_text

# The rank-sum test's level: "higher" when its one-sided p-value is at most ALPHA (an exact test then wrongly says
# higher with probability at most ALPHA). 3 seeds against 3 can reach it (smallest p 1/20); 2 against 3 cannot.
ALPHA = 0.05


def markers(name: str) -> tuple[str, str]:
    """The lines around the report of sweep folder NAME in a page (one page can hold several sweeps' reports)."""
    return f"<!-- shelm report {name}: begin -->", f"<!-- shelm report {name}: end -->"


CURVE_POINTS = 60  # bootstrap CIs for a curve are computed at this many steps at most
ALL_ENVS = "all envs"


@dataclass
class TrialScores:
    name: str
    env_id: str
    label: str
    seed: int
    memory: bool  # has a frozen LM memory (a HELM-family agent) rather than being a baseline
    steps: np.ndarray
    values: np.ndarray
    total_steps: int

    @property
    def finished(self) -> bool:
        return self.steps[-1] >= self.total_steps

    @property
    def final(self) -> float:
        return final_value(self.steps, self.values)


def _is_memory_method(spec: Any) -> bool:
    """Whether an agent is compared with the baselines as a memory method: it has a frozen memory and is not a
    control (the oracle is shown beside the others, never tested against them)."""
    return spec.build_memory is not None and not spec.is_control


def read_trials(sweep_dir: Path, metric: str) -> list[TrialScores]:
    """Every run directory directly under `sweep_dir` (a `shelm sweep` folder, or any folder of runs) that has
    `metric` values; [] when none has."""
    from shelm.agents import get_agent_spec

    if not sweep_dir.is_dir():
        raise ShelmError(f"'{sweep_dir}' is not a directory; give the --out folder of `shelm sweep`")
    trials = []
    for run_dir in sorted(p.parent for p in sweep_dir.glob("*/config.json")):
        run = run_identity(run_dir)
        steps, values = metric_series(run_dir, metric)
        if not len(steps):
            continue
        memory = run.agent is not None and _is_memory_method(get_agent_spec(run.agent))  # a peer is a baseline
        trials.append(
            TrialScores(run_dir.name, run.env_id, run.label, run.seed, memory, steps, values, run.total_steps)
        )
    return trials


def load_trials(sweep_dir: Path, metric: str) -> list[TrialScores]:
    """`read_trials`, refused when no run of the folder has `metric` values yet."""
    trials = read_trials(sweep_dir, metric)
    if not trials:
        raise ShelmError(
            f"no run in '{sweep_dir}' has '{metric}' values; run `shelm sweep --out {sweep_dir}` (or pick another "
            "--metric)"
        )
    return trials


def planned_trials(sweep_dir: Path) -> list[str]:
    """The trial names every invocation of the sweep planned (OUT/sweep.json), in first-planned order; [] for a
    plain folder of runs. All invocations count, not only the latest: a sweep resumed for the seeds still missing
    (`--seeds 3-3`) still owes the trials its earlier invocations planned."""
    from shelm.experiments.sweep import MANIFEST

    path = sweep_dir / MANIFEST
    if not path.is_file():
        return []
    try:
        invocations = json.loads(path.read_text())["invocations"]
        return list(dict.fromkeys(name for invocation in invocations for name in invocation["trials"]))
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ShelmError(f"'{path}' is damaged; move it away (the report then covers the runs it finds)") from None


# --- statistics --------------------------------------------------------------------------------------------


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries (rliable's aggregate_iqm: a 25% trimmed mean)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(scores))


def _interval(score_dict: dict[str, Any], func: Any, reps: int, seed: int = 0) -> tuple[dict, dict]:
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

    points, cis = _interval({"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps)
    return float(points["x"][0]), float(cis["x"][0, 0]), float(cis["x"][1, 0])


def improvement_with_ci(x: np.ndarray, y: np.ndarray, reps: int) -> tuple[float, float, float]:
    """P(X > Y) of [runs, tasks] score matrices (ties count half), averaged over tasks, with its bootstrap CI."""
    from rliable import metrics

    points, cis = _interval({"x,y": [x, y]}, metrics.probability_of_improvement, reps)
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


# --- figures -----------------------------------------------------------------------------------------------


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
            points, cis = _interval({"x": values[:, None, :]}, per_step, reps)
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


# --- markdown ----------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def markdown(summary: dict[str, Any], sweep_dirs: list[Path], metric: str) -> str:
    folders = ", ".join(f"`{d}`" for d in sweep_dirs)
    lines = [
        f"Sweep{'s' * (len(sweep_dirs) > 1)} {folders}: {summary['finished']} finished trials"
        + (f", {len(summary['unfinished'])} unfinished (left out)" if summary["unfinished"] else "")
        + (f", {len(summary['no_run'])} planned with no run here yet" if summary["no_run"] else "")
        + f". Score per trial: `{metric}` averaged over the last 10% of its training steps. IQM = interquartile "
        "mean over seeds; CI = 95% stratified bootstrap (rliable).",
        "",
        "| env | agent | seeds | IQM [95% CI] | mean ± std | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        per_seed = (
            ", ".join(_fmt(v) for v in row["scores"])
            if row["env"] != ALL_ENVS
            else "; ".join(", ".join(_fmt(v) for v in seed_row) for seed_row in row["scores"])
        )
        lines.append(
            f"| {row['env']} | {row['agent']} | {len(row['seeds'])} | {_fmt(row['iqm'])} "
            f"[{_fmt(row['ci'][0])}, {_fmt(row['ci'][1])}] | {_fmt(row['mean'])} ± {_fmt(row['std'])} | {per_seed} |"
        )
    if summary["comparisons"]:
        lines += [
            "",
            "Memory agents against the baselines: probability of improvement P(memory > baseline) with its 95% "
            "bootstrap CI, and a one-sided Wilcoxon rank-sum test over seeds (exact for small samples, ties "
            f'included; higher at alpha {ALPHA}: p <= {ALPHA}; "too few seeds" where no outcome of so few seeds '
            'reaches that p, as with 2 against 3, so a comparison not won decides nothing; the "all envs" rows pool '
            "each seed's score on every env).",
            "",
            f"| env | memory agent | baseline | P(improvement) [95% CI] | rank-sum p | higher at alpha {ALPHA} |",
            "|---|---|---|---|---|---|",
        ]
        for c in summary["comparisons"]:
            lines.append(
                f"| {c['env']} | {c['memory']} | {c['baseline']} | {_fmt(c['probability_of_improvement'])} "
                f"[{_fmt(c['ci'][0])}, {_fmt(c['ci'][1])}] | {c['p_value']:.3f} | {_decision_words(c)} |"
            )
    if summary["unfinished"]:
        lines += [
            "",
            "Unfinished: " + ", ".join(f"{u['name']} ({u['global_step']:,} steps)" for u in summary["unfinished"]),
        ]
    if summary["no_run"]:  # not started, or (in a folder of published trials) not finished
        lines += ["", "Planned, with no run here yet: " + ", ".join(summary["no_run"])]
    return "\n".join(lines) + "\n"


def _decision_words(decision: dict[str, Any]) -> str:
    """A rank_sum_decision in the comparison table's words."""
    if decision["higher"]:
        return "yes"
    if decision["decidable"]:
        return "no"
    n, m = decision["scores"]
    return f"too few seeds ({n} vs {m} scores, smallest p {decision['smallest_p']:.3f})"


# --- claims ------------------------------------------------------------------------------------------------

CLAIMS = "claims"  # NAME in the page markers around the claims table
HOLDS, FAILS, UNTESTABLE, UNMEASURED = "holds", "does not hold", "not testable here", "not measured yet"
UNDECIDABLE = "too few seeds to decide"
# A threshold is a claim about a method, not a run: an IQM of one or two seeds is those runs' mean, which cannot
# tell the method from a lucky or an unlucky seed, so a threshold is decided on this many finished seeds or more.
THRESHOLD_MIN_SEEDS = 3

# Per kind of claim: the keys it must have, then the keys it may have.
CLAIM_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "threshold": (("text", "source", "kind", "env", "agent"), ("at_least", "at_most", "metric", "in_seeds")),
    "beats": (("text", "source", "kind", "env", "agent", "others"), ()),
    "no_worse": (("text", "source", "kind", "env", "agent", "others"), ()),
    "untestable": (("text", "source", "kind", "reason"), ()),
}
# What each key holds and an example value, for the one-line refusals of a bad claims file.
_KEY_VALUES = {
    "text": ("a one-line string", '"SHELM beats the LSTM on MiniGrid-MemoryS11"'),
    "source": ("a one-line string", '"SHELM paper"'),
    "kind": ('"threshold", "beats", "no_worse" or "untestable"', '"threshold"'),
    "env": ("an env id", '"MiniGrid-MemoryS11-v0"'),
    "agent": ("an agent label as the report prints it", '"shelm (symbolic oracle)"'),
    "metric": ("a metrics.jsonl column", '"success_rate"'),
    "at_least": ("a number", "0.9"),
    "at_most": ("a number", "0.6"),
    "in_seeds": ("a whole number of seeds, 1 or more", "2"),
    "others": ("a non-empty list of agent labels", '["lstm", "cnn"]'),
    "reason": ("a one-line string", '"needs CLIP weights, which this machine cannot download"'),
}


@dataclass(frozen=True)
class Claim:
    """One claim from the papers and how the report tests it: a `[[claim]]` table of a --claims file."""

    index: int  # its position in the file, from 1, as refusals and the report's JSON name it
    text: str
    source: str
    kind: str  # a key of CLAIM_KEYS
    env: str = ""
    agent: str = ""
    at_least: float | None = None
    at_most: float | None = None
    metric: str | None = None  # None: the report's metric
    in_seeds: int | None = None  # a threshold met by at least this many seeds, each; None: by the seeds' IQM
    others: tuple[str, ...] = ()
    reason: str = ""


def _valid(key: str, value: Any) -> bool:
    """Whether `value` is what claim key `key` holds (see _KEY_VALUES); `kind` is checked against CLAIM_KEYS."""
    if key in ("at_least", "at_most"):  # TOML booleans are Python ints, and are no threshold
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if key == "in_seeds":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if key == "others":
        return isinstance(value, list) and bool(value) and all(_valid("agent", v) for v in value)
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value


def _claim(path: Path, index: int, table: Any) -> Claim:
    """One `[[claim]]` table checked (its kind, its keys, their types), or one line naming the problem and the fix."""
    text = table.get("text") if isinstance(table, dict) else None
    where = f"--claims {path}: claim {index}" + (f" ({text!r})" if _valid("text", text) else "")
    if not isinstance(table, dict):
        raise ShelmError(f"{where} is not a table; write each claim as a [[claim]] table")
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in CLAIM_KEYS:
        problem = "has no kind" if kind is None else f"kind = {kind!r} is unknown"
        raise ShelmError(f"{where}: {problem}; give kind = {_KEY_VALUES['kind'][0]}")
    required, optional = CLAIM_KEYS[kind]
    for key, value in table.items():
        if key not in required and key not in optional:
            raise ShelmError(
                f"{where}: unknown key {key!r} for a {kind} claim; its keys are {', '.join((*required, *optional))}"
            )
        if key != "kind" and not _valid(key, value):
            what, example = _KEY_VALUES[key]
            raise ShelmError(f"{where}: {key} = {value!r} is not {what}; write e.g. {key} = {example}")
    missing = [key for key in required if key not in table]
    if missing:
        what, example = _KEY_VALUES[missing[0]]
        raise ShelmError(f"{where}: a {kind} claim needs {missing[0]} ({what}); add e.g. {missing[0]} = {example}")
    if kind == "threshold" and ("at_least" in table) == ("at_most" in table):
        raise ShelmError(f"{where}: a threshold claim takes one of at_least and at_most; keep one, e.g. at_least = 0.9")
    if kind in ("beats", "no_worse") and table["agent"] in table["others"]:
        raise ShelmError(
            f"{where}: others names the agent {table['agent']!r} itself; list only the agents it is compared with"
        )
    return Claim(index=index, **{key: tuple(v) if key == "others" else v for key, v in table.items()})


def load_claims(path: Path) -> list[Claim]:
    """Every claim of a --claims file, checked, or one line naming the first problem and its fix."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ShelmError(
            f"--claims {path}: cannot read it ({first_line(exc)}); give a TOML file of [[claim]] tables"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ShelmError(f"--claims {path} is not valid TOML: {first_line(exc)}; fix that line") from None
    extra = sorted(set(data) - {"claim"})
    if extra:
        raise ShelmError(f"--claims {path}: unknown top-level key {extra[0]!r}; the file holds [[claim]] tables only")
    tables = data.get("claim")
    if not isinstance(tables, list) or not tables:
        raise ShelmError(f"--claims {path} has no [[claim]] tables; add one [[claim]] per claim")
    return [_claim(path, index, table) for index, table in enumerate(tables, start=1)]


def _seed_scores(trials: list[TrialScores], env_id: str, label: str) -> tuple[np.ndarray, int]:
    """One agent's finished scores on one env in seed order (a seed reported twice counts once, as in the table),
    and how many of its trials are unfinished."""
    runs = [t for t in trials if t.env_id == env_id and t.label == label]
    finals = {t.seed: t.final for t in runs if t.finished}
    return np.array([finals[seed] for seed in sorted(finals)]), sum(not t.finished for t in runs)


def evaluate_claims(
    claims: list[Claim], trials: dict[str, list[TrialScores]], metric: str, reps: int
) -> list[dict[str, Any]]:
    """Each claim's verdict, the line of numbers behind it and those numbers as data. `trials` holds the reported
    runs per metric: the report's `metric` and every metric a claim names."""
    verdicts = []
    for claim in claims:
        row: dict[str, Any] = {"claim": claim.index, "text": claim.text, "source": claim.source, "kind": claim.kind}
        if claim.kind == "untestable":
            verdicts.append({**row, "verdict": UNTESTABLE, "numbers": claim.reason})
            continue
        claim_metric = claim.metric or metric
        row |= {"env": claim.env, "agent": claim.agent, "metric": claim_metric}
        scores = {label: _seed_scores(trials[claim_metric], claim.env, label) for label in (claim.agent, *claim.others)}
        missing = [(label, unfinished) for label, (values, unfinished) in scores.items() if not len(values)]
        if missing:
            row["missing"] = [{"agent": label, "unfinished": unfinished} for label, unfinished in missing]
            numbers = "; ".join(f"no finished trial of {a!r} on {claim.env} ({n} unfinished)" for a, n in missing)
            if any(not unfinished for _, unfinished in missing):  # perhaps a mistyped label or env: show the names
                reported = sorted({t.label for t in trials[claim_metric] if t.env_id == claim.env})
                numbers += (
                    f"; the agents reported on {claim.env}: {', '.join(reported)}"
                    if reported
                    else f"; no trial of {claim.env} is reported"
                )
            verdicts.append({**row, "verdict": UNMEASURED, "numbers": numbers})
            continue
        values, _ = scores[claim.agent]
        row["seeds"] = len(values)
        row["unfinished"] = sum(unfinished for _, unfinished in scores.values())
        shown = "" if claim_metric == metric else f"`{claim_metric}` "
        if claim.kind == "threshold":
            point, low, high = iqm_with_ci(values[:, None], reps)
            if claim.at_least is not None:
                meets, key, bound = values >= claim.at_least, "at_least", claim.at_least
            else:
                meets, key, bound = values <= claim.at_most, "at_most", claim.at_most
            row |= {key: bound, "iqm": point, "ci": [low, high]}
            needs = f"{key.replace('_', ' ')} {bound}"
            if claim.in_seeds is None:
                holds = point >= bound if key == "at_least" else point <= bound
                numbers = f"{shown}IQM {_fmt(point)} [{_fmt(low)}, {_fmt(high)}], {seeds_text(len(values))}; needs "
                numbers += needs
            else:  # each seed against the bound
                holds = int(meets.sum()) >= claim.in_seeds
                row |= {"in_seeds": claim.in_seeds, "seeds_meeting": int(meets.sum())}
                numbers = f"{shown}per seed {', '.join(_fmt(v) for v in values)}: {int(meets.sum())} of "
                numbers += f"{len(values)} {needs} (IQM {_fmt(point)} [{_fmt(low)}, {_fmt(high)}]); needs {needs} "
                numbers += f"in {claim.in_seeds} {'seed' if claim.in_seeds == 1 else 'seeds'}"
            if len(values) < THRESHOLD_MIN_SEEDS:
                numbers += f" {'on' if claim.in_seeds is None else 'of'} at least {THRESHOLD_MIN_SEEDS} seeds"
                verdict = UNDECIDABLE
            else:
                verdict = HOLDS if holds else FAILS
        elif claim.kind == "no_worse":
            point, low, high = iqm_with_ci(values[:, None], reps)
            row |= {"iqm": point, "ci": [low, high], "against": []}
            for other in claim.others:
                y, _ = scores[other]
                other_point, other_low, other_high = iqm_with_ci(y[:, None], reps)
                row["against"].append(
                    {
                        "agent": other,
                        "seeds": len(y),
                        "iqm": other_point,
                        "ci": [other_low, other_high],
                        "reaches": high >= other_low,
                        # the reverse test: does the other agent score higher than this one?
                        "other_higher": rank_sum_decision(y, values),
                    }
                )
            numbers = f"{shown}IQM {_fmt(point)} [{_fmt(low)}, {_fmt(high)}], {seeds_text(len(values))}; "
            numbers += "; ".join(_parity_numbers(a) for a in row["against"])
            holds = all(a["reaches"] and not a["other_higher"]["higher"] for a in row["against"])
            verdict = HOLDS if holds else FAILS
        else:
            row["against"] = []
            for other in claim.others:
                y, _ = scores[other]
                point, low, high = improvement_with_ci(values[:, None], y[:, None], reps)
                row["against"].append(
                    {
                        "agent": other,
                        "seeds": len(y),
                        "probability_of_improvement": point,
                        "ci": [low, high],
                        **rank_sum_decision(values, y),
                    }
                )
            numbers = "; ".join(_comparison_numbers(a, len(values), shown) for a in row["against"])
            if all(a["higher"] for a in row["against"]):
                verdict = HOLDS
            elif any(not a["higher"] and a["decidable"] for a in row["against"]):
                verdict = FAILS
            else:  # no comparison it lost could have been won with so few seeds
                verdict = UNDECIDABLE
        if row["unfinished"]:
            numbers += f"; {row['unfinished']} unfinished left out"
        verdicts.append({**row, "verdict": verdict, "numbers": numbers})
    return verdicts


def _comparison_numbers(against: dict[str, Any], seeds: int, shown: str) -> str:
    """One comparison of a `beats` claim in words: P(improvement) with its CI, the rank-sum p and the seeds."""
    low, high = against["ci"]
    text = f"vs {against['agent']}: {shown}P(improvement) {_fmt(against['probability_of_improvement'])} "
    text += f"[{_fmt(low)}, {_fmt(high)}], p = {against['p_value']:.3f} ({seeds} vs {against['seeds']} seeds"
    if not against["decidable"]:
        text += f", whose smallest possible p is {against['smallest_p']:.3f}"
    return text + ")"


def _parity_numbers(against: dict[str, Any]) -> str:
    """One comparison of a `no_worse` claim in words: the other agent's IQM with its CI and the reverse test."""
    low, high = against["ci"]
    text = f"{against['agent']} IQM {_fmt(against['iqm'])} [{_fmt(low)}, {_fmt(high)}], {seeds_text(against['seeds'])}"
    reverse = against["other_higher"]
    return text + f"; {against['agent']} higher: p = {reverse['p_value']:.3f}"


def claims_markdown(verdicts: list[dict[str, Any]], claims_file: Path, sweep_dirs: list[Path], metric: str) -> str:
    """The claims table: one row per claim, in the file's order."""
    folders = ", ".join(f"`{d}`" for d in sweep_dirs)
    lines = [
        f"The papers' claims (`{claims_file}`) tested on the finished trials of {folders}. A threshold holds when "
        f"the IQM over seeds of the trials' scores (`{metric}` unless the row names another metric) meets it, with "
        'its 95% bootstrap CI shown (or, where the row needs it "in N seeds", when N seeds\' scores each meet it); '
        f"it is decided on {THRESHOLD_MIN_SEEDS} seeds or more, since the IQM of fewer "
        'is one or two runs\' mean; "beats" holds when a one-sided Wilcoxon rank-sum test over seeds says the '
        f"agent scores higher than each other agent at alpha {ALPHA} (p <= {ALPHA}), with the probability of "
        "improvement and its CI shown; with too few seeds for any outcome to reach that p (2 against 3, say), a "
        'comparison not won cannot decide the claim. "No worse" (a parity check) holds when the agent\'s IQM CI '
        "reaches each other agent's (its upper end at or above the other's lower end) and the rank-sum test does "
        "not say the other scores higher.",
        "",
        "| claim | source | verdict | numbers |",
        "|---|---|---|---|",
    ]
    for v in verdicts:
        cells = (v["text"], v["source"], v["verdict"], v["numbers"])
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def sweep_labels(sweep_dirs: list[Path]) -> list[str]:
    """What names each of several sweep folders in the report: the shortest end of its path that no other folder
    shares (`memory-s11`, or `normalized/memory-s11` beside `evidence/memory-s11`); '' for a lone folder."""
    if len(sweep_dirs) < 2:
        return [""] * len(sweep_dirs)
    parts = [d.resolve().parts for d in sweep_dirs]

    def label(index: int) -> str:
        own = parts[index]
        for length in range(1, len(own) + 1):
            tail = own[-length:]
            if all(other[-length:] != tail for i, other in enumerate(parts) if i != index):
                return "/".join(tail)
        return "/".join(own)  # the same folder listed twice

    return [label(i) for i in range(len(sweep_dirs))]


def _merge(out: Path, page: str, block: str, name: str, new: bool) -> str:
    """The page with `block` in NAME's marked region: appended to a page being created (`new`), else replacing
    the region's old content, and refused when the existing page has no such region."""
    begin, end = markers(name)
    if new:
        return f"{page}{begin}\n{block}{end}\n"
    if begin not in page or end not in page or page.index(begin) > page.index(end):
        raise ShelmError(
            f"'{out}' exists and has no '{begin}' ... '{end}' region; add those two lines where the report goes, "
            "or choose a new --out"
        )
    head, rest = page.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n{block}{end}{tail}"


def write_report(
    sweep_dirs: list[Path],
    out: Path,
    metric: str = "success_rate",
    reps: int = 2000,
    figures_dir: Path | None = None,
    baselines: list[str] | tuple[str, ...] = (),
    claims_file: Path | None = None,
) -> list[str]:
    """Write the markdown, the figures (PNG) and SWEEP-report.json (every number) of one sweep folder, or of several
    reported as one (e.g. a task's agents run in two sweeps with different settings; their agents' labels tell
    the variants apart). Named after the first folder. With `claims_file`, also each claim's verdict on all the
    folders' trials, as a table in the page and in the JSON. Every refusal comes before anything is written.
    Returns lines to print."""
    if reps < 100:
        raise ShelmError(f"--reps {reps}: use at least 100 bootstrap resamples (2000 is the default)")
    stem = sweep_dirs[0].resolve().name
    claims = load_claims(claims_file) if claims_file is not None else []
    if claims_file is not None and stem == CLAIMS:
        raise ShelmError(
            f"'{sweep_dirs[0]}' is named '{CLAIMS}', the name of the claims table's page region; list another "
            "folder first or rename it"
        )
    trials, planned = [], []
    for sweep_dir, label in zip(sweep_dirs, sweep_labels(sweep_dirs), strict=True):
        prefix = f"{label}/" if label else ""  # trial names repeat across sweeps
        found = load_trials(sweep_dir, metric)
        trials += [dataclasses.replace(t, name=prefix + t.name) for t in found]
        planned += [prefix + name for name in planned_trials(sweep_dir)]
    if not any(t.finished for t in trials):
        where = ", ".join(f"'{d}'" for d in sweep_dirs)
        raise ShelmError(f"no trial in {where} has reached its step budget yet; finish them with `shelm sweep`")
    summary = summarize(trials, reps, planned, tuple(baselines))
    by_metric = {metric: trials}
    for claim in claims:
        if claim.metric is not None and claim.metric not in by_metric:
            by_metric[claim.metric] = [t for d in sweep_dirs for t in read_trials(d, claim.metric)]
            if not by_metric[claim.metric]:
                raise ShelmError(
                    f"--claims {claims_file}: claim {claim.index} ({claim.text!r}): no reported run has "
                    f"'{claim.metric}' values; name a metrics.jsonl column, e.g. metric = \"success_rate\""
                )
    verdicts = evaluate_claims(claims, by_metric, metric, reps)
    figures_dir = figures_dir or out.parent
    figures = [figures_dir / f"{stem}-curves.png", figures_dir / f"{stem}-final.png"]
    tables = markdown(summary, sweep_dirs, metric)
    images = "".join(f"![{figure.stem}]({os.path.relpath(figure, out.parent)})\n" for figure in figures)
    new = not out.exists()
    page = _merge(out, "" if new else out.read_text(), f"{tables}\n{images}", stem, new)
    verdict_table = ""
    if claims_file is not None:
        verdict_table = claims_markdown(verdicts, claims_file, sweep_dirs, metric)
        page = _merge(out, page, verdict_table, CLAIMS, new)
    figures_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(trials, metric, min(reps, 500), figures[0])
    plot_final(summary, metric, figures[1])
    write_atomic(out, page.encode())
    numbers = figures_dir / f"{stem}-report.json"
    sweeps = [str(d) for d in sweep_dirs]
    claimed = {"claims_file": str(claims_file), "claims": verdicts} if claims_file is not None else {}
    write_json_atomic(numbers, {"sweeps": sweeps, "metric": metric, "reps": reps, **summary, **claimed})
    return [
        *tables.splitlines(),
        *verdict_table.splitlines(),
        *(f"figure: {f}" for f in figures),
        f"numbers: {numbers}",
        f"report: {out}",
    ]
