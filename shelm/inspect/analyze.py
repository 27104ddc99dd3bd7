"""`shelm analyze`: the papers' analyses, run on a user's own trained run.

Each analysis rolls out the trained agent (or evaluates it) and writes PNG figures plus `NAME.json` with every
number behind them into OUT (default RUN_DIR/analysis):
- distances:  observation-space distances beside LM-input-space distances (HELM: per FrozenHopfield beta);
- tokens:     the word(s) each observation becomes, as a strip of frames, and which observations share a word;
- attention:  the frozen LM's attention over the longest of a few episodes (early, middle, last layer; every
              head), with the episode's key events marked;
- robustness: return under pixel noise, frame drops and occlusion, at several strengths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.files import write_json_atomic
from shelm.inspect import ANALYSES, attention, distances, robustness, tokens
from shelm.inspect.figures import Analysis
from shelm.runs import load_run_config
from shelm.trainers import agents_with_analysis, analyses_of


@dataclass(frozen=True)
class AnalysisSpec:
    """How to run one analysis; which agents it applies to is each agent's trainer's to say
    (`shelm.trainers.analyses_of`)."""

    run: Callable[[Analysis], dict[str, Any]]
    default_episodes: int


SPECS: dict[str, AnalysisSpec] = {
    "distances": AnalysisSpec(distances.run, default_episodes=10),
    "tokens": AnalysisSpec(tokens.run, default_episodes=10),
    "attention": AnalysisSpec(attention.run, default_episodes=5),  # it shows the longest
    "robustness": AnalysisSpec(robustness.run, default_episodes=20),  # per action mode and level
}


def check_applies(what: str, config: TrainConfig, run_dir: Path) -> AnalysisSpec:
    """The analysis `what`, if it applies to the run's agent; otherwise a one-line error naming the agents it
    applies to."""
    if what not in SPECS:
        raise ShelmError(f"--what {what}: unknown analysis; choose one of {', '.join(ANALYSES)}")
    if what not in analyses_of(config.agent):
        agents = agents_with_analysis(what)
        raise ShelmError(
            f"--what {what} needs an agent with a language-model memory ({', '.join(agents)}); "
            f"{run_dir} is a {config.agent} run"
        )
    return SPECS[what]


def analyze(
    run_dir: Path,
    what: str,
    episodes: int | None = None,
    out: Path | None = None,
    checkpoint: str = "latest",
    seed: int | None = None,
    greedy: bool = False,
    max_episode_steps: int | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run analysis `what` on a run; returns its numbers (also written to OUT/WHAT.json) with the figure paths.
    Episodes that reach `max_episode_steps` end there as truncated (None or 0: the env's own limit); the result
    counts them under `capped_episodes`. Unless `quiet`, how much it will play and its progress go to stderr."""
    import matplotlib

    matplotlib.use("Agg")
    from shelm.evaluate import step_cap
    from shelm.ppo import load_policy

    spec = check_applies(what, load_run_config(run_dir), run_dir)
    if episodes is not None and episodes < 1:
        raise ShelmError(f"--episodes {episodes}: analyse at least 1 episode")
    cap = step_cap(max_episode_steps)
    config, policy, state = load_policy(run_dir, checkpoint)
    out = out or run_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    analysis = Analysis(
        run_dir,
        config,
        policy,
        int(state["global_step"]),
        out,
        episodes or spec.default_episodes,
        seed,
        greedy,
        name=what,
        max_episode_steps=cap,
        quiet=quiet,
    )
    result = {
        "analysis": what,
        "run_dir": str(run_dir),
        "env_id": config.env_id,
        "agent": config.agent,
        "train_seed": config.seed,
        "global_step": analysis.global_step,
        "checkpoint": checkpoint,
        "actions": "greedy" if greedy else "sampled",
        **spec.run(analysis),
    }
    result |= {"max_episode_steps": cap, "capped_episodes": analysis.capped}
    result["json"] = str(out / f"{what}.json")
    write_json_atomic(out / f"{what}.json", result)
    return result


def compare(results: list[dict[str, Any]], out: Path) -> Path | None:
    """A figure comparing several runs' results, where the analysis has one (robustness); else None."""
    if results[0]["analysis"] != "robustness":
        return None
    curves = {f"{r['label']}, seed {r['train_seed']}": r["curves"] for r in results}
    envs = sorted({r["env_id"] for r in results})
    return robustness.plot(curves, out / "robustness-comparison.png", ", ".join(envs))


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A few readable lines per analysis; every number is in the JSON file."""
    what = result["analysis"]
    lines = [f"{result['agent']} on {result['env_id']} (step {result['global_step']:,}): {what}"]
    if what == "distances" and "spaces" in result:
        for name, v in result["spaces"].items():
            scale = v.get("mean_distance_over_token_distance")
            scale_text = "" if scale is None else f"   mean distance {scale:.4f} x token-token distance"
            lines.append(f"  {name:<24} Spearman rho {v['rank_correlation']:+.3f}{scale_text}")
    elif what == "tokens":
        lines.append(
            f"  {result['distinct_observations']} distinct observations -> {result['distinct_word_sets']} distinct "
            f"word sets ({result['distinct_words']} words; by {result['words_by']})"
        )
        lines += [f"  '{word}': {len(members)} observations" for word, members in list(result["groups"].items())[:5]]
    elif what == "attention":
        lines.append(f"  {result['steps']} steps; replay max |difference| {result['replay_max_abs_diff']:.2e}")
        for layer, values in result["layers"].items():
            for event, ratios in values["attention_to_events"].items():
                lines.append(f"  layer {layer}: {event}: attention x uniform, best head {max(ratios):.2f}")
    elif what == "robustness":
        for kind, rows in result["curves"].items():
            cells = "  ".join(
                f"{r['level']:g}: {r['greedy']['return_mean']:.2f}/{r['sampled']['return_mean']:.2f}" for r in rows
            )
            lines.append(f"  {kind:<8} return greedy/sampled  {cells}")
    if result.get("capped_episodes"):
        lines.append(
            f"  {result['capped_episodes']} episode(s) reached the cap of {result['max_episode_steps']:,} steps and "
            "ended there as truncated (--max-episode-steps)"
        )
    lines += [f"  figure: {f}" for f in result.get("figures", [])] + [f"  numbers: {result['json']}"]
    return lines
