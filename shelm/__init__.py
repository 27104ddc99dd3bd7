"""shelm: frozen pretrained language models as the memory of reinforcement-learning agents.

The HELM family (HELM, HELMv2, Semantic HELM) and the papers' baselines, trained by one PPO.

The Python API (`shelm.api`): `shelm.train(env, agent=..., steps=...)` trains a run and returns it, and
`shelm.load(run_dir)` gives its trained agent, which acts in your own loop (`act`, or Stable-Baselines3's `predict`).
They are imported on first use, so `import shelm` stays cheap (the command line imports only what each command needs).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["AgentState", "Run", "TrainedAgent", "__version__", "load", "train"]

# The names `shelm.api` lends the package, imported when first asked for.
_API = ("AgentState", "Run", "TrainedAgent", "load", "train")


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module("shelm.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shelm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
