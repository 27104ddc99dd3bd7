"""Which trainer trains a run: the one place that turns an agent's `AgentSpec.trainer` into code.

shelm's PPO (`shelm.ppo`) trains every agent whose spec says 'ppo'; sheeprl's DreamerV2 (`shelm.dreamer`, the
dreamer extra) trains those that say 'dreamer'. `shelm train`, `shelm sweep` and the benchmarks go through here, so
each of them checks and trains any registered agent the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shelm.agents import get_agent_spec
from shelm.config import TrainConfig
from shelm.progress import TrainingProgress


def check_buildable(config: TrainConfig) -> None:
    """Refuse in one line, before anything is written, a run that its trainer could not start."""
    if get_agent_spec(config.agent).trainer == "dreamer":
        from shelm.dreamer import check_buildable as check_dreamer

        check_dreamer(config)
        return
    from shelm.ppo import check_buildable as check_ppo

    check_ppo(config)


def train(
    config: TrainConfig, run_dir: Path, resume: bool = False, progress: TrainingProgress | None = None
) -> dict[str, Any]:
    """Train (or, for PPO agents, continue) the run in `run_dir` with its agent's trainer; the last metrics row."""
    if get_agent_spec(config.agent).trainer == "dreamer":
        from shelm.dreamer import train as train_dreamer

        return train_dreamer(config, run_dir, resume, progress)
    from shelm.ppo import train as train_ppo

    return train_ppo(config, run_dir, resume, progress)
