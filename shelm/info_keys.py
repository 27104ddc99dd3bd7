"""The names of what environments put in their `info` beside the frame, which the memories and analyses read.

The environment suites write these keys and the frozen memories read them; neither side imports the other, both
import the names from here.
"""

from __future__ import annotations

SYMBOLIC_VIEW = "symbolic_view"
"""MiniGrid/BabyAI's symbolic partial view [view, view, 3] (object, colour, state per cell), every reset and step:
SHELM's symbolic retriever names the objects in view from it."""
MEMORY_CUE = "memory_cue"
"""The cue of MiniGrid's Memory tasks (MiniGrid's object index of what lies in the start room): the environment's
state, which only the oracle-memory control reads."""
MISSION = "mission"
"""The task in words ("go to the red ball"), which every MiniGrid and BabyAI env observes: a language memory can
read it (the `instruction` setting)."""
