"""The trainers, and the run plan through which every run starts.

A trainer is an object (`Trainer`): shelm's PPO (`shelm.ppo.PPO`) and sheeprl's DreamerV2 (`shelm.dreamer.DREAMER`).
Each checks a run before anything is written, trains it, resumes it from its latest checkpoint, loads the actors
that play it, and says which `shelm analyze` analyses its runs support. An agent's spec names its trainer in
`TRAINERS` (`AgentSpec.trainer`); everything else asks the trainer object (`trainer_of`), never its name.

A run starts from a `RunPlan`, made once from (env, agent, settings) by `plan_run`, or from a config already resolved
by `plan_config` (a sweep's trial, a saved run): the resolved config and the keys the paper preset set, one probe of
the environment (`shelm.probe`: the spaces, the first reset's info, frames of random play, which the memories and
the checks read instead of building envs of their own), and the agent's trainer. `RunPlan.start` is the one place
where a run starts: check, create the run directory, save config.json, train. `shelm train`, `shelm sweep`, the
Python API (`shelm.train`), the benchmarks and the experiment scripts all start runs through it, and continue them
through `RunPlan.resume`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shelm.agents import AGENTS, AgentSpec, get_agent_spec, resolve_config
from shelm.config import TrainConfig
from shelm.dreamer import DREAMER
from shelm.envs import probe_env
from shelm.errors import ShelmError
from shelm.ppo import PPO
from shelm.probe import EnvProbe
from shelm.progress import TrainingProgress
from shelm.runs import create_run_dir, default_run_dir, load_run_config, save_run_config

MakeActor = Callable[[int, int, bool], Any]
"""(n_envs, seed, greedy) -> an actor for `EnvLoop`: a PPO `Actor`, or another trainer's (`DreamerActor`)."""


class Trainer(Protocol):
    """What trains an agent's runs, and what else its runs can do."""

    label: str
    """Who it is, as messages name it (e.g. "shelm's PPO")."""
    reads_policy: bool
    """Whether its runs hold shelm's `Policy`, whose frozen memory `shelm inspect` and `shelm analyze` read."""
    takes_env_factory: bool
    """Whether it can train on an env made by a Python factory (`shelm.train(factory, ...)`)."""

    def check(self, config: TrainConfig, probe: EnvProbe) -> None:
        """Refuse in one line, before anything is written, a run it could not start."""
        ...

    def train(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        """Train the run in `run_dir` (which holds config.json) to its budget; the last metrics row."""
        ...

    def resume(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        """Continue the run in `run_dir` from its latest checkpoint (from the start where it has none yet)."""
        ...

    def load_actors(self, run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, MakeActor, dict[str, Any]]:
        """The run's config, a maker of actors playing its checkpoint, and the checkpoint's trainer state."""
        ...

    def analyses(self, spec: AgentSpec) -> tuple[str, ...]:
        """The `shelm analyze` analyses that apply to runs of the agent of `spec`."""
        ...


TRAINERS: dict[str, Trainer] = {"ppo": PPO, "dreamer": DREAMER}
"""Each trainer by the name an `AgentSpec.trainer` gives."""


def trainer_of(agent: str) -> Trainer:
    """The trainer of agent `agent` (`AgentSpec.trainer`)."""
    name = get_agent_spec(agent).trainer
    if name not in TRAINERS:
        raise ShelmError(f"agent '{agent}' names trainer '{name}', which is not one of {', '.join(TRAINERS)}")
    return TRAINERS[name]


def analyses_of(agent: str) -> tuple[str, ...]:
    """The `shelm analyze` analyses that apply to runs of `agent`."""
    return trainer_of(agent).analyses(get_agent_spec(agent))


def agents_with_analysis(what: str) -> list[str]:
    """The registered agents whose runs support analysis `what`."""
    return [name for name in AGENTS if what in analyses_of(name)]


def require_policy(agent: str, feature: str, instead: str) -> None:
    """One line refusing `feature` (e.g. 'shelm inspect') for an agent whose trainer's runs hold no shelm `Policy`
    to read, naming what its runs do `instead`."""
    trainer = trainer_of(agent)
    if not trainer.reads_policy:
        readers = " or ".join(sorted({t.label for t in TRAINERS.values() if t.reads_policy}))
        raise ShelmError(
            f"{feature} works on {readers} agents; {agent} is trained by {trainer.label}, whose runs {instead}"
        )


@dataclass(frozen=True)
class RunPlan:
    """A run before it starts: the resolved config, the keys the paper preset set, the probe of its environment,
    and its agent's trainer."""

    config: TrainConfig
    preset_applied: dict[str, Any] = field(repr=False)
    probe: EnvProbe = field(repr=False)
    trainer: Trainer

    @property
    def spec(self) -> AgentSpec:
        return get_agent_spec(self.config.agent)

    def check(self) -> None:
        """Refuse in one line, before anything is written, a run its trainer could not start."""
        self.trainer.check(self.config, self.probe)

    def start(
        self,
        run_dir: Path | None = None,
        *,
        force: bool = False,
        command: str | None = None,
        env_factory: bool = False,
        progress: TrainingProgress | None = None,
    ) -> tuple[Path, dict[str, Any]]:
        """Start the run: check it, create its directory (`run_dir`, by default runs/ENV__AGENT__sSEED__TIME; an
        existing non-empty one is refused unless `force` replaces it), save config.json (`command` is what started
        it, the process's command line by default; `env_factory` records an env made by a Python factory), then
        train it. Returns the run directory and the last metrics row."""
        self.check()
        run_dir = run_dir or default_run_dir(self.config)
        create_run_dir(run_dir, force=force)
        save_run_config(run_dir, self.config, self.preset_applied, command=command, env_factory=env_factory)
        self._announce(run_dir, progress)
        return run_dir, self.trainer.train(self.config, self.probe, run_dir, progress)

    def resume(self, run_dir: Path, progress: TrainingProgress | None = None) -> dict[str, Any]:
        """Continue the run in `run_dir` from its latest checkpoint to its budget; the last metrics row."""
        self._announce(run_dir, progress)
        return self.trainer.resume(self.config, self.probe, run_dir, progress)

    def _announce(self, run_dir: Path, progress: TrainingProgress | None) -> None:
        """What is about to train, and where, as `shelm train` says it (unless `progress` is quiet)."""
        if progress is not None:
            config = self.config
            progress.message(
                f"training {self.spec.label(config)} on {config.env_id} for {config.total_steps} steps -> {run_dir}"
            )


def plan_run(env_id: str, agent: str, overrides: dict[str, Any]) -> RunPlan:
    """The plan of a new run of `agent` on `env_id`: settings resolved (defaults, the paper preset, `overrides`,
    `shelm.agents.resolve_config`), its environment probed once, its trainer. Nothing is written."""
    config, preset_applied = resolve_config(env_id, agent, overrides)
    return plan_config(config, preset_applied)


def plan_config(config: TrainConfig, preset_applied: dict[str, Any] | None = None) -> RunPlan:
    """The plan of a run whose config is already resolved (a sweep's trial, a saved run): its environment probed
    once, its trainer."""
    trainer = trainer_of(config.agent)
    return RunPlan(config, dict(preset_applied or {}), probe_env(config), trainer)


def plan_saved_run(run_dir: Path) -> RunPlan:
    """The plan of the run saved in `run_dir` (its config.json), to continue it."""
    return plan_config(load_run_config(run_dir))
