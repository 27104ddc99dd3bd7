"""A sweep: every (env, agent, seed) trial of a grid, each a normal run directory under one folder.

```
OUT/
  sweep.json                      every invocation's spec and command
  ENV__AGENT__sSEED/              a `shelm train` run directory (config.json, metrics.jsonl, checkpoints/)
```
Trials run in a bounded local process pool by default, or as Ray tasks (`ray_address`). Starting a sweep again skips
finished trials and resumes interrupted ones from their latest checkpoint, so a killed sweep loses at most
`checkpoint_every` iterations per running trial (DreamerV2: `dreamer_checkpoint_every` steps). A trial directory whose
config differs from what the sweep asks for is refused before anything runs: a sweep never mixes settings inside one
folder. Each trial is planned in the sweep's process (`shelm.trainers.plan_run`), where the first seed of each (env,
agent) is checked, and started or resumed from its resolved config in a worker (`plan_config`); its config.json records
the sweep's own command line.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shelm.agents import get_agent_spec
from shelm.config import EXECUTION_SETTINGS, TrainConfig, parse_overrides
from shelm.envs import same_frames
from shelm.errors import ShelmError
from shelm.files import write_json_atomic
from shelm.memory import release_models
from shelm.runs import checkpoint_step, load_run_config, path_safe

MANIFEST = "sweep.json"


@dataclass(frozen=True)
class SweepSpec:
    """What `shelm sweep` was asked for. `settings` are `--set KEY=VALUE` strings applied to every trial."""

    agents: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    out: Path
    steps: int | None = None
    settings: tuple[str, ...] = ()
    workers: int | None = None
    ray_address: str | None = None


@dataclass(frozen=True)
class Trial:
    env_id: str
    agent: str
    seed: int
    run_dir: Path
    config: dict[str, Any] = field(compare=False, repr=False)
    preset_applied: dict[str, Any] = field(compare=False, repr=False)
    command: str = field(compare=False, repr=False)
    """The command line of the sweep that started it (its config.json records it)."""

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass
class TrialResult:
    name: str
    status: str  # "finished" (trained now), "skipped" (was already finished), "failed"
    global_step: int
    started_at_step: int = 0
    seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)
    error: str = ""


SEEDS_PATTERN = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def parse_seeds(text: str) -> tuple[int, ...]:
    """`--seeds`: 'N' is seeds 1..N; 'A-B' is seeds A..B, to add seeds to a sweep or to train some of its seeds
    again elsewhere (e.g. after its finished trials were published and the working folder was lost)."""
    match = SEEDS_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ShelmError(f"--seeds {text}: give N (seeds 1..N) or A-B (seeds A..B)")
    first, last = match.groups()
    low, high = (int(first), int(last)) if last is not None else (1, int(first))
    if low < 1 or low > high:
        raise ShelmError(f"--seeds {text}: a sweep needs at least 1 seed, numbered from 1 (N, or A-B with A <= B)")
    return tuple(range(low, high + 1))


def trial_dir_name(env_id: str, agent: str, seed: int) -> str:
    return f"{path_safe(env_id)}__{agent}__s{seed}"


# --- planning: everything is checked before any trial starts -----------------------------------------------


def _split(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip() for value in values for v in value.split(",") if v.strip()))
    if not items:
        raise ShelmError(f"--{what} is empty; give a comma-separated list")
    return items


def _scope(setting: str) -> str | None:
    """'helm' for 'helm:lm_layers=2', None for 'lm_layers=2' (a ':' in the value, as in lm=transfo-xl:DIR, is not
    a scope)."""
    scope, colon, _ = setting.partition("=")[0].partition(":")
    return scope if colon else None


def agent_settings(settings: tuple[str, ...], agent: str) -> list[str]:
    """The KEY=VALUE settings for `agent`: every plain one and its own AGENT:KEY=VALUE ones. Trials share the
    machine, so a sweep gives each one torch thread unless told otherwise."""
    mine = []
    for setting in settings:
        scope = _scope(setting)
        if scope is None:
            mine.append(setting)
        elif scope == agent:
            mine.append(setting.split(":", 1)[1])
    if "torch_threads" not in parse_overrides(mine):
        mine.append("torch_threads=1")
    return mine


def plan(spec: SweepSpec, command: str) -> list[Trial]:
    """The trials of `spec`, validated: agents, envs, settings and every existing trial directory. `command` is the
    sweep's command line, which each trial's config.json records."""
    from shelm.trainers import plan_run

    if not spec.seeds or min(spec.seeds) < 1:
        raise ShelmError(f"--seeds {list(spec.seeds)}: a sweep needs at least 1 seed, numbered from 1")
    if spec.steps is not None and spec.steps < 1:
        raise ShelmError(f"--steps {spec.steps}: train for at least 1 step")
    if spec.workers is not None and spec.workers < 1:
        raise ShelmError(f"--workers {spec.workers}: use at least 1 worker")
    agents, envs = _split(spec.agents, "agents"), _split(spec.envs, "envs")
    for agent in agents:
        get_agent_spec(agent)
    for setting in spec.settings:
        if (scope := _scope(setting)) is not None and scope not in agents:
            raise ShelmError(f"--set {setting}: '{scope}' is not an agent of this sweep ({', '.join(agents)})")
    trials = []
    for env_id in envs:
        for agent in agents:
            settings = agent_settings(spec.settings, agent)
            overrides = parse_overrides(settings)
            fixed = sorted({"seed", "total_steps", "env_id", "agent"} & set(overrides))
            if fixed:
                raise ShelmError(
                    f"--set {fixed[0]}=...: a sweep sets seed, total_steps, env_id and agent itself; use --seeds, "
                    "--steps, --envs and --agents"
                )
            if spec.steps is not None:
                overrides["total_steps"] = spec.steps
            for seed in spec.seeds:
                trial_plan = plan_run(env_id, agent, {**overrides, "seed": seed})
                if seed == spec.seeds[0]:  # a bad env id, model path or memory setting fails here, before any write
                    trial_plan.check()
                config, applied = trial_plan.config, trial_plan.preset_applied
                run_dir = spec.out / trial_dir_name(env_id, agent, seed)
                trials.append(Trial(env_id, agent, seed, run_dir, config.to_dict(), applied, command))
    for trial in trials:
        _check_existing(trial)
    return trials


def _check_existing(trial: Trial) -> None:
    """An existing trial directory must hold this very trial: the same resolved config, but for the settings that
    only change how fast it computes and those its agent ignores."""
    if not trial.run_dir.exists():
        return
    if not (trial.run_dir / "config.json").is_file():
        if any(trial.run_dir.iterdir()):
            raise ShelmError(f"'{trial.run_dir}' exists but is not a shelm run; move it away or choose another --out")
        return
    recorded = load_run_config(trial.run_dir).to_dict()
    free = {*EXECUTION_SETTINGS, *get_agent_spec(trial.agent).ignored_settings}
    differ = sorted(k for k in trial.config if recorded.get(k) != trial.config[k] and k not in free)
    if "obs_resize" in differ and same_frames(TrainConfig.from_dict(recorded), TrainConfig.from_dict(trial.config)):
        differ.remove("obs_resize")  # e.g. a trial saved before obs_resize existed ('none'), which 'auto' equals
    if differ:
        key = differ[0]
        raise ShelmError(
            f"'{trial.run_dir}' was trained with {key}={recorded.get(key)!r}, this sweep asks {key}="
            f"{trial.config[key]!r}; use another --out, or the settings that folder was made with"
        )


def trial_state(trial: Trial) -> tuple[str, int]:
    """('new' | 'resume' | 'finished', step of the latest checkpoint)."""
    if not (trial.run_dir / "config.json").is_file():
        return "new", 0
    step = checkpoint_step(trial.run_dir, "latest")
    return ("finished" if step >= trial.config["total_steps"] else "resume"), step


# --- one trial, in a worker process ------------------------------------------------------------------------


@contextmanager
def _trial_lock(run_dir: Path) -> Iterator[None]:
    """Only one process trains a trial directory at a time (e.g. a sweep restarted while an old worker lives).
    The lock is on the directory itself, so it leaves no file behind and dies with its process."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShelmError(f"'{run_dir}' is being trained by another process; wait for it or stop it") from None
        yield
    finally:
        os.close(fd)


def run_trial(trial: Trial) -> TrialResult:
    """Train one trial to its step budget (starting or resuming); never raises, failures are results."""
    from shelm.trainers import plan_config

    started = time.monotonic()
    try:
        state, step = trial_state(trial)
        if state == "finished":
            return TrialResult(trial.name, "skipped", step, step)
        trial_plan = plan_config(TrainConfig.from_dict(trial.config), trial.preset_applied)
        trial.run_dir.mkdir(parents=True, exist_ok=True)
        with _trial_lock(trial.run_dir):
            if state == "resume":
                row = trial_plan.resume(trial.run_dir)
            else:
                _, row = trial_plan.start(trial.run_dir, command=trial.command)
        final = {k: row.get(k) for k in ("return_mean", "success_rate")}
        return TrialResult(trial.name, "finished", row["global_step"], step, time.monotonic() - started, final)
    except Exception as exc:  # a failed trial must not stop the others
        message = str(exc) if isinstance(exc, ShelmError) else "".join(traceback.format_exception_only(exc)).strip()
        return TrialResult(trial.name, "failed", 0, 0, time.monotonic() - started, error=message)


def _die_with_parent() -> None:
    """Pool workers get SIGKILL when the sweep process dies, so a killed sweep leaves no orphan trainers."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


# --- running the trials ------------------------------------------------------------------------------------


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_local(trials: list[Trial], workers: int, report: Callable[[TrialResult], None]) -> list[TrialResult]:
    # spawn, not fork: a forked child would inherit torch's thread pools and the parent's loaded models.
    context = multiprocessing.get_context("spawn")
    results = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent) as pool:
        pending: set[Future[TrialResult]] = {pool.submit(run_trial, trial) for trial in trials}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results.append(future.result())
                    report(results[-1])
        except BaseException:
            for future in pending:
                future.cancel()
            # Stop the trainers now (their checkpoints let the next sweep resume). The pool's workers are this
            # process's only multiprocessing children.
            for process in multiprocessing.active_children():
                process.kill()
            raise
    return results


def check_ray_address(address: str) -> None:
    """A HOST:PORT address must accept connections, so a typo fails in seconds with one line."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ShelmError(f"--ray {address!r}: give HOST:PORT of a Ray head node, 'auto', or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ShelmError(
            f"--ray {address}: cannot reach a Ray head there ({exc.strerror or exc}); start one with "
            "`ray start --head` or use --ray local"
        ) from None


def _run_ray(
    trials: list[Trial], address: str, workers: int | None, report: Callable[[TrialResult], None]
) -> list[TrialResult]:
    try:
        import ray
    except ImportError:
        raise ShelmError("--ray needs Ray: pip install -e '.[ray]'") from None
    threads = {trial.config["torch_threads"] or 1 for trial in trials}
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address == "local":
                ray.init(num_cpus=workers or default_workers(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ShelmError(f"--ray {address}: {str(exc).splitlines()[0]}") from None
    try:
        remote = ray.remote(num_cpus=max(threads), max_retries=0)(run_trial)
        pending = {remote.remote(trial): trial for trial in trials}
        results = []
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    results.append(ray.get(ref))
                    report(results[-1])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(spec: SweepSpec, command: str, echo: Callable[[str], None] = print) -> list[TrialResult]:
    """Plan, record and run the sweep; returns one result per trial (skipped ones included)."""
    if spec.ray_address is not None:
        check_ray_address(spec.ray_address)
    trials = plan(spec, command)
    release_models()
    spec.out.mkdir(parents=True, exist_ok=True)
    _record(spec, trials, command)
    states = {trial: trial_state(trial) for trial in trials}
    counts = {s: sum(1 for state, _ in states.values() if state == s) for s in ("finished", "resume", "new")}
    todo = [trial for trial in trials if states[trial][0] != "finished"]
    results = [TrialResult(t.name, "skipped", step, step) for t, (s, step) in states.items() if s == "finished"]
    workers = min(spec.workers or default_workers(), max(len(todo), 1))
    where = f"Ray ({spec.ray_address})" if spec.ray_address else f"{workers} local worker{'s' * (workers > 1)}"
    echo(
        f"{len(trials)} trials in {spec.out}: {counts['finished']} finished (skipped), {counts['resume']} to resume, "
        f"{counts['new']} new; {where}"
    )
    for trial in todo:
        state, step = states[trial]
        echo(f"  {'resume' if state == 'resume' else 'start '} {trial.name}" + (f" from step {step}" if step else ""))
    done = len(results)

    def report(result: TrialResult) -> None:
        nonlocal done
        done += 1
        if result.status == "failed":
            echo(f"[{done}/{len(trials)}] FAILED {result.name}: {result.error}")
            return
        scores = ", ".join(f"{k} {v:.3f}" for k, v in result.final.items() if v is not None)
        echo(
            f"[{done}/{len(trials)}] {result.status} {result.name} at step {result.global_step} "
            f"({_duration(result.seconds)}){': ' + scores if scores else ''}"
        )

    if todo:
        if spec.ray_address is None:
            results += _run_local(todo, workers, report)
        else:
            results += _run_ray(todo, spec.ray_address, spec.workers, report)
    return results


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def _record(spec: SweepSpec, trials: list[Trial], command: str) -> None:
    """Append this invocation to OUT/sweep.json (atomically): what was asked, and the trials it covers."""
    path = spec.out / MANIFEST
    history: list[dict[str, Any]] = []
    if path.is_file():
        try:
            history = json.loads(path.read_text())["invocations"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ShelmError(f"'{path}' is damaged; move it away to start the sweep record afresh") from None
    entry = {k: v for k, v in asdict(spec).items() if k != "out"}
    entry.update(
        command=command,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        trials=[trial.name for trial in trials],
    )
    write_json_atomic(path, {"invocations": [*history, entry]})
