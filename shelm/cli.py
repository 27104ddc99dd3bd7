"""The `shelm` command: a thin layer that parses, calls the library, and turns user errors into one line.

Every problem the user can fix exits with status 2 and one line on stderr naming the bad value and the fix.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from shelm.config import INSPECT_MAX_EPISODE_STEPS
from shelm.errors import ShelmError

QUICKSTART_ENV = "MiniGrid-Empty-5x5-v0"
QUICKSTART_AGENT = "shelm"
# The packaged SmolLM2 cut to its first 2 of 30 blocks keeps the whole quickstart within minutes on 2 cores.
QUICKSTART_SETTINGS = ["lm_layers=2"]
QUICKSTART_STEPS = 40_000


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a cluster scheduler's stop) unwinds like Ctrl-C: a sweep stops its workers and frees its pool
    instead of dying with them orphaned and its semaphores leaked."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other shelm error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"shelm: error: {message} (see `{self.prog} --help`)\n")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an agent (or continue a run with --resume)",
        description=(
            "Train an agent with PPO. Settings resolve as: defaults < the paper preset for (env, agent) < flags and "
            "--set. `shelm settings` lists every key."
        ),
        epilog=(
            "SHELM retrievers (--set retriever=...): 'symbolic' names the MiniGrid/BabyAI objects and colours in view, "
            "read from the environment's state: an ORACLE for perception standing in for a perfect CLIP, not a "
            "method (the default there; labels say 'symbolic oracle'); 'regions' makes words from pixels, the "
            "ImageNet class names of EfficientNet-Lite0 (offline) for each region of the frame, picked by how rare "
            "they have been (the default elsewhere); 'imagenet' uses the same classifier on the whole frame, which "
            "describes grid worlds poorly; 'clip' is the paper's method, words from pixels by CLIP, and needs CLIP "
            "weights you provide (--set clip_model=DIR or a cached hub id). HELMv2 image features: "
            "--set image_encoder=imagenet|clip."
        ),
    )
    p.add_argument("--env", help="environment id (`shelm envs`)")
    p.add_argument("--agent", help="agent name (`shelm agents`)")
    p.add_argument("--steps", type=int, help="total environment steps (total_steps)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--n-envs", type=int, help="parallel environments (n_envs)")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default: runs/ENV__AGENT__sSEED__TIME)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any setting")
    p.add_argument(
        "--env-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword for the env's constructor (gymnasium.make), e.g. agent_view_size=3; repeatable or "
        "comma-separated; ints, floats and true/false are parsed (env_kwargs)",
    )
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue DIR from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing --run-dir")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--track", action="store_true", help="also log to Weights & Biases (--set track=true)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run on fresh seeds (greedy and sampled actions)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=20, help="episodes per mode (default 20)")
    p.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    p.add_argument("--seed", type=int, help="evaluation seed (default: the run's seed + 1e9)")
    p.add_argument("--video", action="store_true", help="write RUN_DIR/eval/CHECKPOINT-MODE.mp4 (GIF fallback)")
    p.add_argument(
        "--perturb",
        metavar="SPEC",
        help="perturb what the agent sees: noise=STD (pixels in [0, 1]), drop=PROB (black frames), "
        "occlude=SIDE (a black square, side as a fraction of the frame), comma-separated, e.g. noise=0.1,drop=0.25",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_playing(p, "the env's own limit")


def _add_playing(p: argparse.ArgumentParser, default: str) -> None:
    """The flags of the commands that play episodes with a trained agent: a step cap per episode, and --quiet."""
    p.add_argument(
        "--max-episode-steps",
        type=int,
        metavar="N",
        help=f"end an episode after N steps, as truncated (default: {default}; 0: no cap but the env's own)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    from shelm.inspect import ANALYSES

    p = sub.add_parser(
        "analyze",
        help="the papers' analyses of a trained run: distances, tokens, attention, robustness (PNG + JSON)",
        description=(
            "distances: observation-space vs LM-input-space distance matrices and their rank correlation (HELM: per "
            "FrozenHopfield beta). tokens: the words observations become, and which observations share one. "
            "attention: the frozen LM's attention over the longest episode, early/middle/last layer, every head, key "
            "events marked. robustness: return under pixel noise, frame drops and occlusion (any agent; give several "
            "runs and --out to compare them in one figure). Figures and NAME.json go to OUT (default RUN_DIR/analysis)."
        ),
    )
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--what", required=True, choices=ANALYSES, help="which analysis")
    p.add_argument(
        "--episodes",
        type=int,
        help="episodes to roll out (defaults: distances and tokens 10, attention 5 "
        "(it shows the longest), robustness 20 per mode and level)",
    )
    p.add_argument("--out", type=Path, help="output folder (default RUN_DIR/analysis; needed for several runs)")
    p.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    p.add_argument("--seed", type=int, help="episode seed (default: the run's seed + 1e9)")
    p.add_argument("--greedy", action="store_true", help="arg-max actions in the rollouts (default: sampled)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    _add_playing(p, "the env's own limit")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train every agent x env x seed, one run directory each; resumable, locally or on Ray",
        description="Train the grid AGENTS x ENVS x seeds (1..N, or A..B) into OUT/ENV__AGENT__sSEED. Run it again to "
        "skip finished trials and resume interrupted ones from their checkpoints.",
    )
    p.add_argument("--agents", required=True, action="append", help="comma-separated agent names (`shelm agents`)")
    p.add_argument("--envs", required=True, action="append", help="comma-separated env ids (`shelm envs`)")
    p.add_argument(
        "--seeds",
        required=True,
        metavar="N|A-B",
        help="seeds 1..N per agent and env, or seeds A..B (e.g. 4-6 adds seeds)",
    )
    p.add_argument("--steps", type=int, help="total environment steps per trial (default: the preset's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every trial; AGENT:KEY=VALUE for one agent's trials only",
    )
    p.add_argument("--out", required=True, type=Path, help="the sweep folder")
    p.add_argument("--workers", type=int, help="trials at once (default: one per CPU core, or Ray's scheduling)")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the trials as Ray tasks: HOST:PORT or 'auto' for a running cluster, 'local' to start one here",
    )


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="aggregate a sweep: IQM with bootstrap CIs, probability of improvement, rank-sum tests, the steps each "
        "memory agent takes to reach success levels, plots; with --claims, the papers' claims tested on its trials",
    )
    p.add_argument("sweep_dirs", type=Path, nargs="+", metavar="DIR", help="a sweep folder, or several reported as one")
    p.add_argument("--out", type=Path, help="markdown file to write (default DIR/report.md of the first DIR)")
    p.add_argument("--figures", type=Path, help="folder for the PNGs and the numbers' JSON (default: beside --out)")
    p.add_argument("--metric", default="success_rate", help="a metrics.jsonl column (default success_rate)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="LABEL",
        help="also compare every other agent against this one (its label as the table shows it, e.g. an ablation's "
        "'shelm (symbolic, lm_layers=2)'); repeatable",
    )
    p.add_argument(
        "--claims",
        type=Path,
        metavar="FILE",
        help="a TOML file of [[claim]] tables (e.g. docs/claims.toml): also give each claim a verdict (holds, does "
        "not hold, not testable here, not measured yet) from all the DIRs' finished trials, written between "
        "'<!-- shelm report claims: begin -->' and '<!-- shelm report claims: end -->' and into the JSON",
    )


def _add_retrieval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrieval",
        help="how well SHELM retrievers' words name what a grid-world frame shows (random policy, scored with the "
        "env's symbolic state)",
        description=(
            "Play episodes of a MiniGrid/BabyAI env with a uniformly random policy, feed every frame in play order to "
            "each retriever, and decode from each frame's k words the nearest object in view (type, colour, both) "
            "and, on MiniGrid's Memory tasks, the cue where it is in view: a majority-vote table per word tuple, fit "
            "on the even episodes and scored on the odd ones, against chance (the most common label). The env's "
            "symbolic state only scores the words (the symbolic retriever is an oracle that reads it)."
        ),
    )
    p.add_argument("--env", required=True, help="a MiniGrid-* or BabyAI-* id (`shelm envs`)")
    p.add_argument(
        "--retrievers",
        required=True,
        type=lambda text: text.split(","),
        metavar="A,B,...",
        help="comma-separated retriever names, e.g. symbolic,imagenet,regions",
    )
    p.add_argument("--episodes", type=int, help="episodes to play, at least 2 (default: as many as 2,500 frames take)")
    p.add_argument("--seed", type=int, help="seeds the episodes and the random policy (default 0)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SHELM setting for every retriever (e.g. topk=2, region_pixels=64); the paper preset's otherwise",
    )
    p.add_argument("--out", type=Path, help="also write every number to this JSON file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shelm", description="Frozen language models as memory for RL agents (HELM family).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_eval(sub)
    _add_analyze(sub)
    p = sub.add_parser("plot", help="learning curves of runs (seeds aggregated) and a table of final values")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--metric", default="success_rate", help="a metrics.jsonl column (default success_rate)")
    p.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write (default curves.png)")
    i = sub.add_parser(
        "inspect",
        help="read a trained agent's memory: one HTML page (frames, words, actions, values, memory window) and an MP4",
        description=(
            "Roll out the trained agent (greedy, or --sampled) and write OUT/inspect.html (self-contained) and "
            "OUT/inspect.mp4 with the words drawn on the frames; the words also go to the run's TensorBoard. "
            "SHELM's words come from its retriever (named on the page); HELM and HELMv2 show the token nearest to "
            "their LM input."
        ),
    )
    i.add_argument("run_dir", type=Path)
    i.add_argument("--episodes", type=int, default=1, help="episodes to record (default 1)")
    i.add_argument("--out", type=Path, help="output folder (default RUN_DIR/inspect)")
    i.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    i.add_argument("--seed", type=int, help="episode seed (default: the run's seed + 1e9)")
    i.add_argument("--sampled", action="store_true", help="sample actions from the policy (default: greedy)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    _add_playing(i, f"{INSPECT_MAX_EPISODE_STEPS}, as the page holds every step")
    _add_retrieval(sub)
    _add_sweep(sub)
    _add_report(sub)
    e = sub.add_parser("envs", help="list the environments (id and suite), one per line")
    e.add_argument("--suites", action="store_true", help="list the suites instead: installed or not, and how to get it")
    sub.add_parser("agents", help="list the agents, one per line")
    sub.add_parser("settings", help="list every training setting with its default")
    q = sub.add_parser(
        "quickstart",
        help=f"train {QUICKSTART_AGENT} on {QUICKSTART_ENV} briefly, evaluate it, and write its readable-memory page",
    )
    q.add_argument("--run-dir", type=Path, help="where to write the run (default: runs/quickstart-TIME)")
    q.add_argument("--steps", type=int, default=QUICKSTART_STEPS)
    return parser


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings `shelm train`'s flags and `--set`s give, checked."""
    from shelm.config import format_env_kwargs, parse_overrides

    overrides = parse_overrides(args.set)
    if args.track:
        overrides["track"] = True
    if args.env_kwargs:
        overrides["env_kwargs"] = format_env_kwargs(args.env_kwargs)
    for key, value in (("total_steps", args.steps), ("seed", args.seed), ("n_envs", args.n_envs)):
        if value is not None:
            overrides[key] = value
    return overrides


def _check_resume(args: argparse.Namespace) -> None:
    """`--resume DIR` takes nothing that would change the run: one line naming what to drop."""
    given = [
        f"--{k.replace('_', '-')}"
        for k in ("env", "agent", "steps", "seed", "n_envs", "run_dir", "track", "env_kwargs")
        if getattr(args, k)
    ]
    if given or args.set or args.force:
        raise ShelmError(f"--resume continues a run with its saved config; drop {', '.join(given) or '--set/--force'}")
    if not args.resume.is_dir():
        raise ShelmError(f"--resume {args.resume}: no such run directory")
    _refuse_factory_run(args.resume)


def _refuse_factory_run(run_dir: Path) -> None:
    """A run whose env a Python factory made cannot be rebuilt by a command: one line naming the Python calls that
    take the factory again (`shelm.train(factory, resume=...)`, `shelm.load(run_dir, env=factory)`)."""
    from shelm.envs.factory import not_given
    from shelm.runs import load_run_config, made_by_factory

    if made_by_factory(run_dir):
        raise ShelmError(not_given(load_run_config(run_dir).env_id, str(run_dir)))


def cmd_train(args: argparse.Namespace) -> int:
    from shelm.agents import get_agent_spec
    from shelm.progress import TrainingProgress, fmt_metric
    from shelm.runs import checkpoint_step, load_run_config
    from shelm.trainers import plan_run, plan_saved_run

    if args.resume:
        _check_resume(args)
        run_dir, config = args.resume, load_run_config(args.resume)
        progress = TrainingProgress(config.total_steps, checkpoint_step(run_dir, "latest"), quiet=args.quiet)
        if progress.start_step >= config.total_steps:
            progress.message(f"{run_dir} already finished its {config.total_steps} steps: `shelm eval {run_dir}`")
            return 0
        row = plan_saved_run(run_dir).resume(run_dir, progress)
    else:
        if not args.env or not args.agent:
            raise ShelmError("train needs --env ID and --agent NAME (or --resume DIR)")
        get_agent_spec(args.agent)
        plan = plan_run(args.env, args.agent, _train_overrides(args))
        progress = TrainingProgress(plan.config.total_steps, 0, quiet=args.quiet)
        run_dir, row = plan.start(args.run_dir, force=args.force, command=args.command_line, progress=progress)
    summary = ", ".join(f"{key} {fmt_metric(row[key], '.3f')}" for key in ("return_mean", "success_rate"))
    progress.message(f"done: {row['global_step']} steps, {summary}; next: `shelm eval {run_dir}`")
    return 0


def _print_eval(report: dict) -> None:
    for mode in ("greedy", "sampled"):
        s = report[mode]
        print(
            f"{mode:8s} episodes {s['episodes']}  return {s['return_mean']:.3f} ± {s['return_std']:.3f}  "
            f"success_rate {s['success_rate']:.2f}  length {s['length_mean']:.1f}"
        )
        if s.get("capped"):
            print(
                f"{'':8s} {s['capped']} of {s['episodes']} episodes reached the cap of {report['max_episode_steps']:,} "
                "steps and ended there as truncated (--max-episode-steps)"
            )
    for video in report.get("videos", []):
        print(f"video: {video}")


def cmd_eval(args: argparse.Namespace) -> int:
    from shelm.evaluate import evaluate

    _refuse_factory_run(args.run_dir)
    report = evaluate(
        args.run_dir,
        args.episodes,
        args.checkpoint,
        args.seed,
        args.video,
        args.perturb,
        max_episode_steps=args.max_episode_steps,
        quiet=args.quiet,
    )
    if args.json:
        print(json.dumps(report))
    else:
        perturbed = "" if report["perturbation"] == "none" else f", perturbed by {report['perturbation']}"
        print(
            f"{report['agent']} on {report['env_id']} at step {report['global_step']} "
            f"({args.checkpoint} checkpoint{perturbed})"
        )
        _print_eval(report)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from shelm.inspect.page import inspect_run, print_summary
    from shelm.runs import load_run_config
    from shelm.trainers import require_policy

    if args.episodes < 1:
        raise ShelmError(f"--episodes {args.episodes}: inspect at least 1 episode")
    if not (args.run_dir / "config.json").is_file():
        raise ShelmError(f"'{args.run_dir}' is not a shelm run directory (no config.json); give a `shelm train` output")
    agent = load_run_config(args.run_dir).agent
    require_policy(agent, "shelm inspect", f"have no memory or words to show: `shelm eval {args.run_dir}` plays it")
    _refuse_factory_run(args.run_dir)
    cap = INSPECT_MAX_EPISODE_STEPS if args.max_episode_steps is None else args.max_episode_steps
    summary = inspect_run(
        args.run_dir, args.episodes, args.out, args.checkpoint, args.seed, args.sampled, cap, quiet=args.quiet
    )
    print_summary(summary, args.json)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from shelm.inspect.analyze import analyze, check_applies, compare, summary_lines
    from shelm.runs import load_run_config
    from shelm.trainers import require_policy

    if len(args.run_dirs) > 1 and args.out is None:
        raise ShelmError(f"{len(args.run_dirs)} runs need --out DIR (each run gets DIR/RUN_NAME, comparisons DIR)")
    for run_dir in args.run_dirs:  # every run is checked before any work starts
        config = load_run_config(run_dir)
        instead = f"it cannot read: `shelm eval {run_dir}` (also --perturb) plays it"
        require_policy(config.agent, "shelm analyze", instead)
        _refuse_factory_run(run_dir)
        check_applies(args.what, config, run_dir)
    results = []
    for run_dir in args.run_dirs:
        out = args.out / run_dir.name if len(args.run_dirs) > 1 else args.out
        result = analyze(
            run_dir,
            args.what,
            args.episodes,
            out,
            args.checkpoint,
            args.seed,
            args.greedy,
            max_episode_steps=args.max_episode_steps,
            quiet=args.quiet,
        )
        results.append(result)
        print(json.dumps(result) if args.json else "\n".join(summary_lines(result)), flush=True)
    if len(results) > 1 and (figure := compare(results, args.out)) is not None and not args.json:
        print(f"comparison: {figure}")
    return 0


def cmd_retrieval(args: argparse.Namespace) -> int:
    from shelm.files import write_json_atomic
    from shelm.inspect.retrieval import check, measure, summary, table

    if args.out is not None and not args.out.parent.is_dir():
        raise ShelmError(f"--out {args.out}: no folder {args.out.parent}; create it or write elsewhere")
    report = measure(check(args.env, args.retrievers, args.episodes, args.seed, args.set))
    print(summary(report))
    print()
    print(table(report))
    if args.out is not None:
        write_json_atomic(args.out, report)
        print(f"\nnumbers: {args.out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from shelm.inspect.curves import final_table, load_groups, plot_curves

    groups = load_groups(args.run_dirs, args.metric)
    plot_curves(groups, args.metric, args.out)
    print(final_table(groups, args.metric))
    print(f"\nfigure: {args.out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from shelm.experiments.sweep import SweepSpec, parse_seeds, run_sweep

    seeds = parse_seeds(args.seeds)
    spec = SweepSpec(
        tuple(args.agents), tuple(args.envs), seeds, args.out, args.steps, tuple(args.set), args.workers, args.ray
    )
    results = run_sweep(spec, args.command_line)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(
            f"shelm: {len(failed)} of {len(results)} trials failed; run the sweep again to retry them", file=sys.stderr
        )
        return 1
    print(f"all {len(results)} trials finished; next: `shelm report {args.out}`")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from shelm.experiments.report import write_report

    out = args.out or args.sweep_dirs[0] / "report.md"
    for line in write_report(args.sweep_dirs, out, args.metric, args.reps, args.figures, args.baseline, args.claims):
        print(line)
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from shelm.envs import list_envs, suites

    if args.suites:
        for name, installed, how in suites():
            print(f"{name}\t{'installed' if installed else 'not installed'}\t{how}")
        return 0
    for env_id, suite in list_envs():
        print(f"{env_id}\t{suite}")
    return 0


def cmd_agents(_: argparse.Namespace) -> int:
    from shelm.agents import AGENTS

    for spec in AGENTS.values():
        print(f"{spec.name}\t{spec.summary}")
    return 0


def cmd_settings(_: argparse.Namespace) -> int:
    from shelm.config import config_help

    for key, default, text in config_help():
        print(f"{key}\t{default}\t{text}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from datetime import datetime

    run_dir = args.run_dir or Path("runs") / f"quickstart-{datetime.now():%Y%m%d-%H%M%S}"
    train_args = ["train", "--env", QUICKSTART_ENV, "--agent", QUICKSTART_AGENT, "--steps", str(args.steps)]
    train_args += ["--run-dir", str(run_dir)] + [arg for s in QUICKSTART_SETTINGS for arg in ("--set", s)]
    for argv in (train_args, ["eval", str(run_dir), "--episodes", "20"], ["inspect", str(run_dir)]):
        print(f"$ shelm {' '.join(argv)}", flush=True)
        code = main(argv)
        if code:
            return code
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "inspect": cmd_inspect,
    "analyze": cmd_analyze,
    "retrieval": cmd_retrieval,
    "plot": cmd_plot,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "envs": cmd_envs,
    "agents": cmd_agents,
    "settings": cmd_settings,
    "quickstart": cmd_quickstart,
}


_TRAIN_RESUME_HINT = "; `shelm train --resume RUN_DIR` continues from the last checkpoint"
RESUME_HINTS = {
    "train": _TRAIN_RESUME_HINT,
    "quickstart": _TRAIN_RESUME_HINT,
    "sweep": "; the same `shelm sweep` command continues each trial from its last checkpoint",
}


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the process's own command line: this process owns its signals
        argv = sys.argv[1:]
        signal.signal(signal.SIGTERM, _raise_terminated)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["shelm", *argv])  # recorded in config.json
    try:
        return COMMANDS[args.command](args)
    except ShelmError as exc:
        print(f"shelm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"shelm: interrupted{RESUME_HINTS.get(args.command, '')}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
