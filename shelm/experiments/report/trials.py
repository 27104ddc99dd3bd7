"""The report's trials: each finished or unfinished run of the reported folders with its metric's values and its
final score, and the trials a sweep planned."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shelm.errors import ShelmError
from shelm.inspect.curves import final_value, metric_series, run_identity


@dataclass
class TrialScores:
    """One trial of the report: a run directory's identity and its metric's values over its training steps."""

    name: str
    env_id: str
    agent: str  # the registered agent's name, or a peer library's as its runs are labelled
    settings: dict[str, Any]  # a shelm run's resolved training settings (config.json); {} for a peer's run
    label: str  # how the page names the agent's variant (`AgentSpec.label`), or the peer's name
    seed: int
    memory: bool  # has a frozen LM memory (a HELM-family agent) rather than being a baseline
    remembers: bool  # has any memory of the episode's past steps, frozen or trained (`AgentSpec.has_memory`)
    peer: bool  # a peer library's trial (experiments/lstm_parity.py), not a shelm run
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
    from shelm.runs import load_run_config

    if not sweep_dir.is_dir():
        raise ShelmError(f"'{sweep_dir}' is not a directory; give the --out folder of `shelm sweep`")
    trials = []
    for run_dir in sorted(p.parent for p in sweep_dir.glob("*/config.json")):
        run = run_identity(run_dir)
        steps, values = metric_series(run_dir, metric)
        if not len(steps):
            continue
        if run.agent is None:  # a peer's run: a baseline, named by the peer; what it remembers its config cannot say
            agent, settings, memory, remembers = run.label, {}, False, False
        else:
            spec = get_agent_spec(run.agent)
            agent, settings = run.agent, load_run_config(run_dir).to_dict()
            memory, remembers = _is_memory_method(spec), spec.has_memory
        trials.append(
            TrialScores(
                name=run_dir.name,
                env_id=run.env_id,
                agent=agent,
                settings=settings,
                label=run.label,
                seed=run.seed,
                memory=memory,
                remembers=remembers,
                peer=run.agent is None,
                steps=steps,
                values=values,
                total_steps=run.total_steps,
            )
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
