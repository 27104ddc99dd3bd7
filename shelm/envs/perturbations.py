"""Observation perturbations for robustness checks (`shelm eval --perturb SPEC`, `shelm analyze --what robustness`).

SPEC is one or more comma-separated KIND=LEVEL pairs, e.g. `noise=0.1` or `drop=0.25,occlude=0.3`:
- noise=S: Gaussian pixel noise with standard deviation S on the [0, 1] pixel scale, clipped to valid pixels;
- drop=P: each step, each environment's frame is lost with probability P and the agent sees a black frame;
- occlude=F: each step, a black square of side F * min(height, width) hides a random part of the frame.

They change what the agent sees, i.e. the pixels reaching both its memory and its CNN. MiniGrid's symbolic view
(what the `symbolic` retriever reads instead of pixels) is changed consistently where that has a meaning: a dropped
frame shows nothing, an occluded grid cell (its centre under the square) is unseen; pixel noise has no symbolic
counterpart and leaves it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shelm.errors import ShelmError
from shelm.info_keys import SYMBOLIC_VIEW

KINDS = {"noise": (0.0, float("inf")), "drop": (0.0, 1.0), "occlude": (0.0, 1.0)}
USAGE = "use KIND=LEVEL pairs separated by commas, KIND one of noise (std >= 0), drop (0..1), occlude (0..1)"


@dataclass(frozen=True)
class Perturbation:
    noise: float = 0.0
    drop: float = 0.0
    occlude: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> Perturbation:
        if not spec:
            return cls()
        levels: dict[str, float] = {}
        for part in spec.split(","):
            kind, sep, value = part.strip().partition("=")
            if not sep or kind not in KINDS:
                raise ShelmError(f"perturbation '{part.strip()}' in '{spec}' is not understood; {USAGE}")
            try:
                level = float(value)
            except ValueError:
                raise ShelmError(f"perturbation level '{value}' of {kind} is not a number; {USAGE}") from None
            low, high = KINDS[kind]
            if not low <= level <= high:
                raise ShelmError(f"{kind}={value} is out of range; {USAGE}")
            levels[kind] = level
        return cls(**levels)

    @property
    def is_identity(self) -> bool:
        return self.noise == 0 and self.drop == 0 and self.occlude == 0

    def spec(self) -> str:
        return ",".join(f"{kind}={getattr(self, kind):g}" for kind in KINDS if getattr(self, kind)) or "none"


class Perturber:
    """Applies a `Perturbation` to batches of observations with its own random stream: the environments, the
    policy's action sampling and therefore a level-0 run are exactly those of an unperturbed evaluation."""

    def __init__(self, perturbation: Perturbation, seed: int):
        self.perturbation = perturbation
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray, infos: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """obs uint8 [N, H, W, C] and the vector env's infos -> perturbed copies."""
        p, infos = self.perturbation, dict(infos)
        if p.is_identity:
            return obs, infos
        n, height, width = obs.shape[:3]
        out = obs.astype(np.float32)
        symbolic = np.array(infos[SYMBOLIC_VIEW]) if SYMBOLIC_VIEW in infos else None
        if p.noise:
            out += self.rng.normal(0.0, p.noise * 255.0, size=out.shape).astype(np.float32)
        if p.occlude:
            side = max(1, round(p.occlude * min(height, width)))
            tops = self.rng.integers(0, height - side + 1, size=n)
            lefts = self.rng.integers(0, width - side + 1, size=n)
            for i, (top, left) in enumerate(zip(tops, lefts, strict=True)):
                out[i, top : top + side, left : left + side] = 0.0
                if symbolic is not None:
                    _hide_cells(symbolic[i], (height, width), top, left, side)
        if p.drop:
            dropped = self.rng.random(n) < p.drop
            out[dropped] = 0.0
            if symbolic is not None:
                symbolic[dropped] = 0
        if symbolic is not None:
            infos[SYMBOLIC_VIEW] = symbolic
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), infos


def _hide_cells(view: np.ndarray, frame: tuple[int, int], top: int, left: int, side: int) -> None:
    """Mark as unseen (all zeros) the cells of a symbolic view [cols, rows, 3] whose centre pixel is occluded;
    MiniGrid indexes its view by (column, row) and draws cell (c, r) at pixels [r*tile, c*tile]."""
    cols, rows = view.shape[:2]
    cell_h, cell_w = frame[0] / rows, frame[1] / cols
    for c in range(cols):
        for r in range(rows):
            y, x = (r + 0.5) * cell_h, (c + 0.5) * cell_w
            if top <= y < top + side and left <= x < left + side:
                view[c, r] = 0
