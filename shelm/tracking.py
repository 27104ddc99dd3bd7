"""Optional Weights & Biases logging (`shelm train --track`): the same metrics TensorBoard gets, the run's config,
and the `shelm inspect` page.

A run's W&B id is derived from its config.json, so training, a resumed run and a later `shelm inspect` of the same
run directory all write into one W&B run. `WANDB_MODE=offline` logs without a network into the run directory's
`wandb/` folder (`wandb sync` uploads it later); that is how the tests run it. Needs the `track` extra.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from shelm.config import TrainConfig
from shelm.errors import ShelmError


def wandb_run_id(run_dir: Path) -> str:
    """A stable W&B run id for a run directory: the hash of its config.json."""
    return hashlib.sha256((run_dir / "config.json").read_bytes()).hexdigest()[:16]


class WandbTracker:
    """One W&B run for one shelm run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path):
        try:
            import wandb
        except ImportError:
            raise ShelmError("--track needs Weights & Biases: pip install -e '.[track]'") from None
        self.run = wandb.init(
            project=config.wandb_project,
            entity=config.wandb_entity or None,
            name=run_dir.name,
            id=wandb_run_id(run_dir),
            resume="allow",
            dir=str(run_dir),
            config=config.to_dict(),
        )
        self.wandb = wandb

    def log(self, row: dict[str, Any], step: int) -> None:
        """A metrics row, under the names TensorBoard uses (`shelm/KEY`), finite numbers only."""
        values = {
            f"shelm/{key}": value
            for key, value in row.items()
            if key not in ("global_step", "iteration") and isinstance(value, int | float) and math.isfinite(value)
        }
        self.run.log(values, step=step)

    def log_page(self, page: Path, step: int) -> None:
        """The self-contained `shelm inspect` page, as W&B HTML media."""
        self.run.log({"inspect/page": self.wandb.Html(page.read_text())}, step=step)

    def finish(self) -> None:
        self.run.finish()
