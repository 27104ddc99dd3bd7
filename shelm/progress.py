"""Progress: of training (a rich bar on a terminal, plain lines otherwise), and of playing episodes with a trained
agent (`PlayProgress`, lines on stderr); nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

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


def fmt_duration(seconds: float) -> str:
    """3 s, 4 min 05 s, 2 h 07 min: a duration as a person reads it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def cap_text(cap: int | None, own_limit: int | None) -> str:
    """How long each episode may last, for the line that says up front how much will be played."""
    if cap is not None and (own_limit is None or cap < own_limit):
        return f"each capped at {cap:,} steps (--max-episode-steps)"
    if own_limit is not None:
        return f"each to its end, at most {own_limit:,} steps (the env's own limit)"
    return "each to its end (the env sets no step limit shelm can read; --max-episode-steps N caps them)"


class PlayProgress:
    """Progress of playing episodes with a trained agent (`shelm eval`, `inspect`, `analyze`), on stderr so that
    stdout keeps only the results: what will be played, said up front (`announce`); then, while it plays, at most a
    line every `every_s` seconds with the episodes done of the total, the steps per second and an estimate of the
    time left; and a last line when it is done. Nothing when quiet. One episode of an Atari game with a language
    model at every step can take minutes, which nobody should have to sit through without a word."""

    def __init__(
        self,
        what: str,
        total_episodes: int,
        cap: int | None = None,
        quiet: bool = False,
        every_s: float = 5.0,
        stream: TextIO | None = None,
    ):
        self.what, self.total, self.cap, self.quiet, self.every_s = what, total_episodes, cap, quiet, every_s
        self.stream = stream
        self.episodes = self.steps = self.capped = 0
        self.start = self._last = time.monotonic()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(f"{self.what}: {text}", file=self.stream or sys.stderr, flush=True)

    def announce(self, text: str) -> None:
        """Say up front how much will be played, e.g. "13 levels x 2 modes x 20 episodes, each capped at 1,000 steps";
        the clock of the estimates starts here."""
        self._print(text)
        self.start = self._last = time.monotonic()

    def update(self, steps: int, episodes: int = 0, capped: int = 0) -> None:
        """Count `steps` environment steps (summed over the envs) and the `episodes` they finished, `capped` of which
        ended at the step cap; print a line if the last one is `every_s` old."""
        self.steps += steps
        self.episodes += episodes
        self.capped += capped
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(self.status(now))

    def status(self, now: float | None = None) -> str:
        """episodes done / total, steps per second and the time left (from the episodes finished so far, or, before
        the first ends, an upper bound from the step cap)."""
        elapsed = max((time.monotonic() if now is None else now) - self.start, 1e-9)
        sps = self.steps / elapsed
        left = self.total - self.episodes
        if self.episodes:
            eta = f"about {fmt_duration(elapsed / self.episodes * left)} left"
        elif self.cap is not None and sps > 0:
            eta = f"at most {fmt_duration(max(self.total * self.cap - self.steps, 0) / sps)} left"
        else:
            eta = "time left unknown until an episode ends"
        return f"{self.episodes}/{self.total} episodes, {self.steps:,} steps, {sps:.1f} steps/s, {eta}"

    def finish(self) -> None:
        """The last line: how much was played, how fast, and how many episodes the cap ended."""
        elapsed = time.monotonic() - self.start
        capped = f"; {self.capped} of them reached the cap of {self.cap:,} steps (truncated)" if self.capped else ""
        self._print(
            f"played {self.episodes} episodes, {self.steps:,} steps in {fmt_duration(elapsed)} "
            f"({self.steps / max(elapsed, 1e-9):.1f} steps/s){capped}"
        )
