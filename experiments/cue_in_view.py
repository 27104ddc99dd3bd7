"""A control for the language memories on MiniGrid-MemoryS11: the same task with the cue always in view at the start.

MiniGrid-MemoryS11 starts the agent in a random column of the hallway, facing the far end; the cue lies in the
start room's first column, so only an agent that starts there, or turns back to look, ever sees it. This script
registers `MiniGrid-MemoryS11FromCue-v0`: the same grid, objects and rewards, but the agent always starts in that
first column, where the cue is in view at the first step. A memory agent that learns this variant but not S11
has a memory and a policy that can use it, and fails S11 at exploring (looking back); one that fails both cannot
carry or read the cue. Everything after the registration is `shelm`'s own command line, in this process:

    python experiments/cue_in_view.py train --env MiniGrid-MemoryS11FromCue-v0 --agent shelm --seed 1 \
        --steps 500000 --set lm_layers=2 --set lr=5e-4 --set ent_coef=0.005 --set mem_len=15 --set topk=1 \
        --run-dir runs/evidence/cue-in-view/shelm-L2-s1

(S11's paper settings for SHELM, given by hand: the papers' presets are per task, and this task is not theirs.)
The env lives only in this process, so use `train`, `eval`, `inspect` or `analyze` through this script, not
`shelm sweep`, whose workers would not have it.
"""

from __future__ import annotations

import sys

import numpy as np
from gymnasium.envs.registration import register
from minigrid.envs.memory import MemoryEnv

from shelm.cli import main

ENV_ID = "MiniGrid-MemoryS11FromCue-v0"


class MemoryFromCueEnv(MemoryEnv):
    """MiniGrid's Memory task with the agent placed in the start room's first column, beside the cue."""

    def _gen_grid(self, width: int, height: int) -> None:
        super()._gen_grid(width, height)
        self.agent_pos = np.array((1, height // 2))


register(id=ENV_ID, entry_point=MemoryFromCueEnv, kwargs={"size": 11, "random_length": False})

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
