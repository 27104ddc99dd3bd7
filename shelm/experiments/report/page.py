"""The report's page: the markdown tables of a sweep's numbers and of the claims' verdicts, each in its marked
region of a page, and `write_report`, which writes the page, the figures and the numbers' JSON."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from shelm.errors import ShelmError
from shelm.experiments.report.claims import evaluate_claims, load_claims
from shelm.experiments.report.efficiency import reach_text, sample_efficiency
from shelm.experiments.report.figures import plot_curves, plot_final
from shelm.experiments.report.statistics import ALL_ENVS, ALPHA, MIN_SEEDS, fmt, summarize
from shelm.experiments.report.trials import load_trials, planned_trials, read_trials
from shelm.files import write_atomic, write_json_atomic

CLAIMS = "claims"  # NAME in the page markers around the claims table


def markers(name: str) -> tuple[str, str]:
    """The lines around the report of sweep folder NAME in a page (one page can hold several sweeps' reports)."""
    return f"<!-- shelm report {name}: begin -->", f"<!-- shelm report {name}: end -->"


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
            ", ".join(fmt(v) for v in row["scores"])
            if row["env"] != ALL_ENVS
            else "; ".join(", ".join(fmt(v) for v in seed_row) for seed_row in row["scores"])
        )
        lines.append(
            f"| {row['env']} | {row['agent']} | {len(row['seeds'])} | {fmt(row['iqm'])} "
            f"[{fmt(row['ci'][0])}, {fmt(row['ci'][1])}] | {fmt(row['mean'])} ± {fmt(row['std'])} | {per_seed} |"
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
                f"| {c['env']} | {c['memory']} | {c['baseline']} | {fmt(c['probability_of_improvement'])} "
                f"[{fmt(c['ci'][0])}, {fmt(c['ci'][1])}] | {c['p_value']:.3f} | {_decision_words(c)} |"
            )
    lines += _efficiency_lines(summary["sample_efficiency"], metric)
    if summary["unfinished"]:
        lines += [
            "",
            "Unfinished: " + ", ".join(f"{u['name']} ({u['global_step']:,} steps)" for u in summary["unfinished"]),
        ]
    if summary["no_run"]:  # not started, or (in a folder of published trials) not finished
        lines += ["", "Planned, with no run here yet: " + ", ".join(summary["no_run"])]
    return "\n".join(lines) + "\n"


def _efficiency_lines(efficiency: dict[str, Any], metric: str) -> list[str]:
    """The sample-efficiency table (`efficiency.sample_efficiency`), after a blank line; none when no reported agent
    remembers."""
    if not efficiency["rows"]:
        return []
    levels = efficiency["levels"]
    lines = [
        "",
        "Sample efficiency of the agents with a memory (frozen, trained, or the oracle control) and of peer "
        f"libraries' trials: the environment step at which a trial's `{metric}`, averaged over a trailing window "
        f"of {efficiency['window']:.0%} of its step budget (from the step where a whole window is trained), first "
        f"reaches each level. Per agent, the finished seeds that reach it; where {MIN_SEEDS} or more do, the IQM of "
        'their steps with its 95% bootstrap CI, else each seed\'s step or "never".',
        "",
        "| env | agent | seeds | " + " | ".join(f"reaches {level:g}" for level in levels) + " |",
        "|---|---|---|" + "---|" * len(levels),
    ]
    for row in efficiency["rows"]:
        agent = f"{row['agent']} [peer]" if row["peer"] else row["agent"]
        cells = " | ".join(reach_text(level) for level in row["levels"])
        lines.append(f"| {row['env']} | {agent} | {len(row['seeds'])} | {cells} |")
    return lines


def _decision_words(decision: dict[str, Any]) -> str:
    """A rank_sum_decision in the comparison table's words."""
    if decision["higher"]:
        return "yes"
    if decision["decidable"]:
        return "no"
    n, m = decision["scores"]
    return f"too few seeds ({n} vs {m} scores, smallest p {decision['smallest_p']:.3f})"


def claims_markdown(verdicts: list[dict[str, Any]], claims_file: Path, sweep_dirs: list[Path], metric: str) -> str:
    """The claims table: one row per claim, in the file's order."""
    folders = ", ".join(f"`{d}`" for d in sweep_dirs)
    lines = [
        f"The papers' claims (`{claims_file}`) tested on the finished trials of {folders}. A threshold holds when "
        f"the IQM over seeds of the trials' scores (`{metric}` unless the row names another metric) meets it, with "
        'its 95% bootstrap CI shown (or, where the row needs it "in N seeds", when N seeds\' scores each meet it); '
        f"it is decided on {MIN_SEEDS} seeds or more, since the IQM of fewer "
        'is one or two runs\' mean; "beats" holds when a one-sided Wilcoxon rank-sum test over seeds says the '
        f"agent scores higher than each other agent at alpha {ALPHA} (p <= {ALPHA}), with the probability of "
        "improvement and its CI shown; with too few seeds for any outcome to reach that p (2 against 3, say), a "
        'comparison not won cannot decide the claim. "No worse" (a parity check) holds when the agent\'s IQM CI '
        "reaches each other agent's (its upper end at or above the other's lower end) and the rank-sum test does "
        'not say the other scores higher. "Reaches sooner" holds when the agent reaches the level (as in the '
        f"sample-efficiency table, within the smallest step budget of the trials compared) in {MIN_SEEDS} seeds or "
        "more and the one-sided rank-sum test says its steps to it are fewer than each other agent's at alpha "
        f"{ALPHA}, a seed that never reaches it counting as infinitely many; it is decided on {MIN_SEEDS} seeds or "
        "more on each side, with each side's steps to the level and final IQM shown.",
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
    summary["sample_efficiency"] = sample_efficiency(trials, reps)
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
