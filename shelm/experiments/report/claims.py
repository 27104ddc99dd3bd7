"""The claims language of `shelm report --claims`: a TOML file of `[[claim]]` tables, checked when it is read, and
each claim's verdict with the numbers behind it.

A claim names the trials it is about by what they are, not by how a page prints them: an env, an agent (a registered
agent's name, or a peer library's as its runs are labelled) and the values of the training settings that tell the
meant variant apart from the agent's other trials on that env, e.g. `agent = "shelm"` with `settings = {retriever =
"symbolic", lm_layers = 2}`. Settings it does not name may take any value, as long as the trials it names are one
variant of the agent (one row of the page's table); trials of several are refused in one line naming the settings
they differ in.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shelm.agents import AGENTS
from shelm.config import EXECUTION_SETTINGS, TrainConfig, parse_value
from shelm.errors import ShelmError, first_line
from shelm.experiments.report.efficiency import reach, reach_text, steps_to_level
from shelm.experiments.report.statistics import (
    MIN_SEEDS,
    fmt,
    fmt_steps,
    improvement_with_ci,
    iqm_with_ci,
    rank_sum_decision,
)
from shelm.experiments.report.trials import TrialScores
from shelm.inspect.curves import seeds_text

HOLDS, FAILS, UNTESTABLE, UNMEASURED = "holds", "does not hold", "not testable here", "not measured yet"
UNDECIDABLE = "too few seeds to decide"

# Per kind of claim: the keys it must have, then the keys it may have.
CLAIM_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "threshold": (
        ("text", "source", "kind", "env", "agent"),
        ("settings", "at_least", "at_most", "metric", "in_seeds"),
    ),
    "beats": (("text", "source", "kind", "env", "agent", "others"), ("settings", "metric")),
    "no_worse": (("text", "source", "kind", "env", "agent", "others"), ("settings", "metric")),
    "reaches_sooner": (("text", "source", "kind", "env", "agent", "others", "level"), ("settings", "metric")),
    "untestable": (("text", "source", "kind", "reason"), ()),
}
# What each key holds and an example value, for the one-line refusals of a bad claims file.
_KEY_VALUES = {
    "text": ("a one-line string", '"SHELM beats the LSTM on MiniGrid-MemoryS11"'),
    "source": ("a one-line string", '"SHELM paper"'),
    "kind": ('"threshold", "beats", "no_worse", "reaches_sooner" or "untestable"', '"threshold"'),
    "env": ("an env id", '"MiniGrid-MemoryS11-v0"'),
    "agent": ("an agent's name (a registered agent, or a peer library's as its runs are labelled)", '"shelm"'),
    "settings": ("a table of training settings and their values", '{retriever = "symbolic", lm_layers = 2}'),
    "metric": ("a metrics.jsonl column", '"success_rate"'),
    "at_least": ("a number", "0.9"),
    "at_most": ("a number", "0.6"),
    "level": ("a number", "0.9"),
    "in_seeds": ("a whole number of seeds, 1 or more", "2"),
    "others": (
        "a non-empty list of tables, each an agent and its settings",
        '[{agent = "lstm"}, {agent = "helm", settings = {lm_layers = 2}}]',
    ),
    "reason": ("a one-line string", '"needs CLIP weights, which this machine cannot download"'),
}


SELECTOR_KEYS = ("agent", "settings")  # the keys of each table of a claim's `others`


@dataclass(frozen=True)
class TrialSelector:
    """The trials a claim names on its env: one agent's, whose training settings have these values (settings not
    named may have any value)."""

    agent: str
    settings: tuple[tuple[str, Any], ...] = ()  # (setting, value) in the file's order

    def matches(self, trial: TrialScores) -> bool:
        """Whether `trial` is one of the trials named (a peer's trial has no settings, so only its name matches)."""
        return trial.agent == self.agent and all(trial.settings.get(key) == value for key, value in self.settings)

    def as_json(self) -> dict[str, Any]:
        """The agent and its named settings, as the report's JSON records them."""
        return {"agent": self.agent, "settings": dict(self.settings)}

    def __str__(self) -> str:
        """The agent and its named settings, e.g. 'shelm (retriever=regions, lm_layers=2)'."""
        named = ", ".join(f"{key}={value}" for key, value in self.settings)
        return f"{self.agent} ({named})" if named else self.agent


@dataclass(frozen=True)
class Claim:
    """One claim from the papers and how the report tests it: a `[[claim]]` table of a --claims file."""

    index: int  # its position in the file, from 1, as refusals and the report's JSON name it
    where: str  # how one-line refusals name it: the file, its index and its text
    text: str
    source: str
    kind: str  # a key of CLAIM_KEYS
    env: str = ""
    agent: TrialSelector | None = None  # None for an untestable claim
    at_least: float | None = None
    at_most: float | None = None
    metric: str | None = None  # None: the report's metric
    in_seeds: int | None = None  # a threshold met by at least this many seeds, each; None: by the seeds' IQM
    level: float | None = None  # the level a reaches_sooner claim's steps are counted to
    others: tuple[TrialSelector, ...] = ()
    reason: str = ""


def _valid(key: str, value: Any) -> bool:
    """Whether `value` is what claim key `key` holds (see _KEY_VALUES); `kind` is checked against CLAIM_KEYS."""
    if key in ("at_least", "at_most", "level"):  # TOML booleans are Python ints, and are no threshold
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if key == "in_seeds":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if key == "settings":
        return isinstance(value, dict)
    if key == "others":
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value


def _setting_problem(key: str, value: Any) -> str | None:
    """Why `key = value` of a claim's settings is no training setting's value, in a few words; None when it is one.
    A value is compared with the setting's as config.json records it, so it must have the setting's type."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        return f"{key!r} is no training setting{f' (did you mean {close[0]}?)' if close else ''}"
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    try:
        parsed = parse_value(key, text)
    except ShelmError:
        parsed = None
    same_type = type(parsed) is type(value) or (type(parsed) is float and type(value) is int)
    if parsed != value or not same_type:
        return f"{key} = {value!r} is no value of {key}"
    return None


def _selector(where: str, name: str, agent: Any, settings: Any) -> TrialSelector:
    """An agent and its settings (`name`: where the claim gives them, e.g. 'others[2]') checked, or one line naming
    the problem and the fix."""
    if not _valid("agent", agent):
        what, example = _KEY_VALUES["agent"]
        raise ShelmError(f"{where}: {name} agent = {agent!r} is not {what}; write e.g. agent = {example}")
    if not _valid("settings", settings):
        what, example = _KEY_VALUES["settings"]
        raise ShelmError(f"{where}: {name} settings = {settings!r} is not {what}; write e.g. settings = {example}")
    for key, value in settings.items():
        problem = _setting_problem(key, value)
        if problem:
            raise ShelmError(f"{where}: {name} settings: {problem}; `shelm settings` lists them and what they take")
    if settings and agent not in AGENTS:
        raise ShelmError(
            f"{where}: {name} settings are a shelm agent's, and {agent!r} is no registered agent; name a peer "
            "library's trials by the peer alone, or pick an agent `shelm agents` lists"
        )
    return TrialSelector(agent, tuple(settings.items()))


def _other(where: str, position: int, table: dict[str, Any]) -> TrialSelector:
    """One table of a claim's `others`, checked."""
    name = f"others[{position}]"
    unknown = [key for key in table if key not in SELECTOR_KEYS]
    if unknown:
        raise ShelmError(f"{where}: {name} has unknown key {unknown[0]!r}; its keys are {', '.join(SELECTOR_KEYS)}")
    if "agent" not in table:
        raise ShelmError(f'{where}: {name} names no agent; write e.g. {{agent = "lstm"}}')
    return _selector(where, name, table["agent"], table.get("settings", {}))


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
    if kind == "untestable":
        return Claim(index=index, where=where, **table)
    agent = _selector(where, "its", table["agent"], table.get("settings", {}))
    others = tuple(_other(where, position, other) for position, other in enumerate(table.get("others", []), start=1))
    if any(other.agent == agent.agent and dict(other.settings) == dict(agent.settings) for other in others):
        raise ShelmError(f"{where}: others names its own agent '{agent}'; list only the ones it is compared with")
    plain = {key: value for key, value in table.items() if key not in ("agent", "settings", "others")}
    return Claim(index=index, where=where, agent=agent, others=others, **plain)


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


def _picked(
    claim: Claim, selector: TrialSelector, trials: list[TrialScores]
) -> tuple[str | None, list[TrialScores], int]:
    """The trials `selector` names on the claim's env: their variant's label as the page prints it (None when no
    trial is named), the finished ones in seed order (a seed reported twice counts once, as in the table), and how
    many of them are unfinished. Trials of more than one variant are refused in one line naming the settings they
    differ in."""
    runs = [t for t in trials if t.env_id == claim.env and selector.matches(t)]
    labels = sorted({t.label for t in runs})
    if len(labels) > 1:
        free = ("seed", *EXECUTION_SETTINGS)
        differ = [key for key in runs[0].settings if key not in free and len({repr(t.settings[key]) for t in runs}) > 1]
        raise ShelmError(
            f"{claim.where}: '{selector}' names {len(labels)} variants on {claim.env} ({'; '.join(labels)}), which "
            f"differ in {', '.join(differ)}; add the value meant to its settings"
        )
    finished = {t.seed: t for t in runs if t.finished}
    return (
        (labels[0] if labels else None),
        [finished[seed] for seed in sorted(finished)],
        sum(not t.finished for t in runs),
    )


def evaluate_claims(
    claims: list[Claim], trials: dict[str, list[TrialScores]], metric: str, reps: int
) -> list[dict[str, Any]]:
    """Each claim's verdict, the line of numbers behind it and those numbers as data. `trials` holds the reported
    runs per metric: the report's `metric` and every metric a claim names. A claim naming trials of several variants
    of an agent is refused in one line."""
    verdicts = []
    for claim in claims:
        row: dict[str, Any] = {"claim": claim.index, "text": claim.text, "source": claim.source, "kind": claim.kind}
        if claim.agent is None:  # an untestable claim, which names no trials
            verdicts.append({**row, "verdict": UNTESTABLE, "numbers": claim.reason})
            continue
        claim_metric = claim.metric or metric
        row |= {"env": claim.env, **claim.agent.as_json(), "metric": claim_metric}
        selectors = (claim.agent, *claim.others)
        picked = [_picked(claim, selector, trials[claim_metric]) for selector in selectors]
        missing = [(selector, n) for selector, (_, runs, n) in zip(selectors, picked, strict=True) if not runs]
        if missing:
            row["missing"] = [{**selector.as_json(), "unfinished": n} for selector, n in missing]
            numbers = "; ".join(f"no finished trial of '{s}' on {claim.env} ({n} unfinished)" for s, n in missing)
            if any(not unfinished for _, unfinished in missing):  # perhaps a mistyped name or env: show the names
                reported = sorted({t.label for t in trials[claim_metric] if t.env_id == claim.env})
                numbers += (
                    f"; the agents reported on {claim.env}: {', '.join(reported)}"
                    if reported
                    else f"; no trial of {claim.env} is reported"
                )
            verdicts.append({**row, "verdict": UNMEASURED, "numbers": numbers})
            continue
        label, runs, _ = picked[0]
        values = _finals(runs)
        row |= {"label": label, "seeds": len(values), "unfinished": sum(unfinished for *_, unfinished in picked)}
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
            if len(values) < MIN_SEEDS:
                numbers += f" {'on' if claim.in_seeds is None else 'of'} at least {MIN_SEEDS} seeds"
                verdict = UNDECIDABLE
            else:
                verdict = HOLDS if holds else FAILS
        elif claim.kind == "no_worse":
            point, low, high = iqm_with_ci(values[:, None], reps)
            row |= {"iqm": point, "ci": [low, high], "against": []}
            for other, (other_label, other_runs, _) in zip(claim.others, picked[1:], strict=True):
                y = _finals(other_runs)
                other_point, other_low, other_high = iqm_with_ci(y[:, None], reps)
                row["against"].append(
                    {
                        **other.as_json(),
                        "label": other_label,
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
        elif claim.kind == "reaches_sooner":
            verdict, numbers, measured = _sooner(claim, picked, reps)
            row |= measured
            numbers = shown + numbers
        else:
            row["against"] = []
            for other, (other_label, other_runs, _) in zip(claim.others, picked[1:], strict=True):
                y = _finals(other_runs)
                point, low, high = improvement_with_ci(values[:, None], y[:, None], reps)
                row["against"].append(
                    {
                        **other.as_json(),
                        "label": other_label,
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


def _finals(runs: list[TrialScores]) -> np.ndarray:
    """The final scores of finished trials, in their order."""
    return np.array([t.final for t in runs])


def _sooner(
    claim: Claim, picked: list[tuple[str | None, list[TrialScores], int]], reps: int
) -> tuple[str, str, dict[str, Any]]:
    """A reaches_sooner claim's verdict, its numbers in words and as data. Every side's trials are counted to the
    level within the smallest step budget among them (steps beyond it count as never), so that a longer trial's
    late arrival is not set against a shorter one's "never"; a seed that never reaches it ranks after every seed
    that does (+infinity; seeds that never do tie)."""
    level = float(claim.level or 0.0)  # load_claims makes sure a reaches_sooner claim has one
    budget = min(t.total_steps for _, runs, _ in picked for t in runs)

    def side(runs: list[TrialScores]) -> dict[str, Any]:
        final, _, _ = iqm_with_ci(_finals(runs)[:, None], reps)
        return {"final_iqm": final, "reach": reach([steps_to_level(t, level, budget) for t in runs], reps)}

    def ranked(steps: list[int | None]) -> np.ndarray:  # sooner is higher for the rank-sum test
        return -np.array([math.inf if s is None else s for s in steps], dtype=np.float64)

    _, runs, _ = picked[0]
    mine = side(runs)
    against = []
    for other, (other_label, other_runs, _) in zip(claim.others, picked[1:], strict=True):
        theirs = side(other_runs)
        sooner = rank_sum_decision(ranked(mine["reach"]["steps"]), ranked(theirs["reach"]["steps"]))
        against.append({**other.as_json(), "label": other_label, **theirs, "sooner": sooner})
    numbers = f"{level:g} within {fmt_steps(budget)} steps reached by {reach_text(mine['reach'])}, final IQM "
    numbers += fmt(mine["final_iqm"])
    for a in against:
        numbers += f"; vs {a['label']}: {reach_text(a['reach'])}, final IQM {fmt(a['final_iqm'])}, sooner: p = "
        numbers += f"{a['sooner']['p_value']:.3f}"
    if len(runs) < MIN_SEEDS or any(a["reach"]["seeds"] < MIN_SEEDS for a in against):
        verdict = UNDECIDABLE
        numbers += f"; decided on at least {MIN_SEEDS} seeds on each side"
    elif mine["reach"]["reached"] >= MIN_SEEDS and all(a["sooner"]["higher"] for a in against):
        verdict = HOLDS
    else:
        verdict = FAILS
    return verdict, numbers, {"level": level, "budget": budget, **mine, "against": against}


def _comparison_numbers(against: dict[str, Any], seeds: int, shown: str) -> str:
    """One comparison of a `beats` claim in words: P(improvement) with its CI, the rank-sum p and the seeds."""
    low, high = against["ci"]
    text = f"vs {against['label']}: {shown}P(improvement) {fmt(against['probability_of_improvement'])} "
    text += f"[{fmt(low)}, {fmt(high)}], p = {against['p_value']:.3f} ({seeds} vs {against['seeds']} seeds"
    if not against["decidable"]:
        text += f", whose smallest possible p is {against['smallest_p']:.3f}"
    return text + ")"


def _parity_numbers(against: dict[str, Any]) -> str:
    """One comparison of a `no_worse` claim in words: the other agent's IQM with its CI and the reverse test."""
    low, high = against["ci"]
    text = f"{against['label']} IQM {fmt(against['iqm'])} [{fmt(low)}, {fmt(high)}], {seeds_text(against['seeds'])}"
    reverse = against["other_higher"]
    return text + f"; {against['label']} higher: p = {reverse['p_value']:.3f}"
