"""What every analysis of `shelm analyze` works with: the trained run it looks at (`Analysis`) and how it writes
its figures (`save_figure`). The analyses import this module, and `shelm.inspect.analyze` runs them; the
learning-curve plots of `shelm plot` and `shelm report` lay out their panels with it (`curve_panels`,
`finish_curve_panel`) and write their file with it too."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelm.agents.policy import Policy
from shelm.config import TrainConfig
from shelm.evaluate import own_step_limit
from shelm.files import write_atomic
from shelm.inspect.trace import Trace, record_policy
from shelm.progress import PlayProgress, cap_text


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
    name: str = "analyze"
    """Which analysis, as its progress lines name it."""
    max_episode_steps: int | None = None
    """Episodes that reach this many steps end there as truncated (None: the env's own limit)."""
    quiet: bool = True
    """No progress on stderr."""
    capped: int = 0
    """Episodes played so far that reached `max_episode_steps`."""

    def figure_path(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def progress(self, total_episodes: int, plan: str) -> PlayProgress:
        """The progress of playing `total_episodes` episodes, having said up front `plan` (what they are) and how long
        each may last."""
        progress = PlayProgress(self.name, total_episodes, self.max_episode_steps, self.quiet)
        if not self.quiet:
            progress.announce(f"{plan}, {cap_text(self.max_episode_steps, own_step_limit(self.config))}")
        return progress

    def rollout(self) -> Trace:
        progress = self.progress(self.episodes, f"{self.episodes} episode(s)")
        trace = record_policy(
            self.run_dir,
            self.config,
            self.policy,
            self.global_step,
            self.episodes,
            self.seed,
            not self.greedy,
            self.max_episode_steps,
            progress,
        )
        progress.finish()
        self.capped += sum(episode.capped for episode in trace.episodes)
        return trace


def save_figure(fig: Any, path: Path) -> Path:
    """PNG written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path


def short_count(value: float, _position: Any = None) -> str:
    """A tick label for a count of steps: 0, 500, 50k, 1.5M (matplotlib's formatter signature)."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def curve_panels(panels: int, legend_lines: int) -> tuple[Any, Any]:
    """A row of learning-curve panels [1, panels], each tall enough for a legend of `legend_lines` entries below it
    (`finish_curve_panel` puts it there)."""
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(5.5 * panels, 3.8 + 0.17 * legend_lines), squeeze=False)


def finish_curve_panel(ax: Any, title: str, ylabel: str) -> None:
    """Title, axes and legend of one learning-curve panel: environment steps with short tick labels that never run
    into each other, and the legend below the panel, where it hides no curve."""
    from matplotlib.ticker import FuncFormatter

    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(FuncFormatter(short_count))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.16), frameon=False)
