"""Training progress: a rich bar on a terminal, plain lines otherwise, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def fmt_metric(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class TrainingProgress:
    """Context manager fed one metrics row per PPO iteration."""

    def __init__(self, total_steps: int, start_step: int, quiet: bool = False, plain_every_s: float = 10.0):
        self.total_steps, self.start_step = total_steps, start_step
        self.quiet = quiet
        self.console = Console(stderr=False)
        self.rich = not quiet and self.console.is_terminal
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._progress: Progress | None = None

    def __enter__(self) -> TrainingProgress:
        if self.rich:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total_steps, completed=self.start_step, stats="")
        return self

    def update(self, row: dict[str, Any]) -> None:
        stats = (
            f"sps {row['sps']:.0f}  return {fmt_metric(row['return_mean'], '.3f')}  "
            f"success {fmt_metric(row['success_rate'], '.2f')}"
        )
        if self._progress is not None:
            self._progress.update(self._task, completed=min(row["global_step"], self.total_steps), stats=stats)
        elif not self.quiet:
            now = time.monotonic()
            last = row["global_step"] >= self.total_steps
            if last or now - self._last_plain >= self.plain_every_s:
                self._last_plain = now
                print(f"step {row['global_step']}/{self.total_steps}  {stats}", flush=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stdout, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
