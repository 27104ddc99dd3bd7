"""The claims language of `shelm report --claims`: a TOML file of `[[claim]]` tables, checked when it is read, and
each claim's verdict with the numbers behind it."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shelm.errors import ShelmError, first_line
from shelm.experiments.report.statistics import fmt, improvement_with_ci, iqm_with_ci, rank_sum_decision
from shelm.experiments.report.trials import TrialScores
from shelm.inspect.curves import seeds_text

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
                numbers = f"{shown}IQM {fmt(point)} [{fmt(low)}, {fmt(high)}], {seeds_text(len(values))}; needs "
                numbers += needs
            else:  # each seed against the bound
                holds = int(meets.sum()) >= claim.in_seeds
                row |= {"in_seeds": claim.in_seeds, "seeds_meeting": int(meets.sum())}
                numbers = f"{shown}per seed {', '.join(fmt(v) for v in values)}: {int(meets.sum())} of "
                numbers += f"{len(values)} {needs} (IQM {fmt(point)} [{fmt(low)}, {fmt(high)}]); needs {needs} "
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
            numbers = f"{shown}IQM {fmt(point)} [{fmt(low)}, {fmt(high)}], {seeds_text(len(values))}; "
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
    text = f"vs {against['agent']}: {shown}P(improvement) {fmt(against['probability_of_improvement'])} "
    text += f"[{fmt(low)}, {fmt(high)}], p = {against['p_value']:.3f} ({seeds} vs {against['seeds']} seeds"
    if not against["decidable"]:
        text += f", whose smallest possible p is {against['smallest_p']:.3f}"
    return text + ")"


def _parity_numbers(against: dict[str, Any]) -> str:
    """One comparison of a `no_worse` claim in words: the other agent's IQM with its CI and the reverse test."""
    low, high = against["ci"]
    text = f"{against['agent']} IQM {fmt(against['iqm'])} [{fmt(low)}, {fmt(high)}], {seeds_text(against['seeds'])}"
    reverse = against["other_higher"]
    return text + f"; {against['agent']} higher: p = {reverse['p_value']:.3f}"
