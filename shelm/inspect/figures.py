"""What every analysis of `shelm analyze` works with: the trained run it looks at (`Analysis`) and how it writes
its figures (`save_figure`). The analyses import this module, and `shelm.inspect.analyze` runs them."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelm.agents.policy import Policy
from shelm.config import TrainConfig
from shelm.files import write_atomic
from shelm.inspect.trace import Trace, record_policy


@dataclass
class Analysis:
    """One analysis run on one trained policy."""

    run_dir: Path
    config: TrainConfig
    policy: Policy
    global_step: int
    out: Path
    episodes: int
    seed: int | None
    greedy: bool
    """Arg-max actions in the rollouts; by default they are sampled, as in training (a greedy MiniGrid policy
    often repeats one action and sees a handful of observations)."""

    def figure_path(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def rollout(self) -> Trace:
        return record_policy(
            self.run_dir, self.config, self.policy, self.global_step, self.episodes, self.seed, sampled=not self.greedy
        )


def save_figure(fig: Any, path: Path) -> Path:
    """PNG written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path
