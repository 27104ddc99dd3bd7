"""The symbolic retriever: MiniGrid/BabyAI's objects in view, named in words. An oracle, not a model.

It stands in for a perfect CLIP on grid worlds (no CLIP weights can be installed offline, and ImageNet
classifiers see every grid frame as a "scoreboard"). It reads the environment's symbolic partial view
(`info["symbolic_view"]`: object, colour and state per visible cell) and names what is there: "green ball",
"red key", "locked blue door", "wall", "goal", "lava". Nothing is learned and nothing is guessed, so results
with it measure the memory, not the perception; say so wherever they are shown.

Scores rank what an agent would mention first: any object (score 1 + 1/(1+d)) before walls (1/(1+d)),
nearer before farther, with d the Manhattan distance in cells from the agent to the nearest instance. When
fewer than k things are in view the remaining slots say "nothing".
"""

from __future__ import annotations

from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.info_keys import SYMBOLIC_VIEW
from shelm.memory.retrieval import phrase_tokens

# MiniGrid's encoding (minigrid.core.constants): object and colour indices, door states.
_OBJECTS = {"wall": 2, "door": 4, "key": 5, "ball": 6, "box": 7, "goal": 8, "lava": 9}
_COLOURS = ["red", "green", "blue", "purple", "yellow", "grey"]
_DOOR_STATES = {0: "open ", 1: "", 2: "locked "}  # open, closed, locked


def _vocabulary() -> tuple[list[str], dict[tuple[int, int, int], int], set[int]]:
    """The phrases, a map (object, colour, state) -> phrase id, and the ids of walls (ranked after objects)."""
    phrases: list[str] = []
    lookup: dict[tuple[int, int, int], int] = {}
    for c, colour in enumerate(_COLOURS):
        for name in ("key", "ball", "box"):
            for state in range(3):
                lookup[(_OBJECTS[name], c, state)] = len(phrases)
            phrases.append(f"{colour} {name}")
        for state, prefix in _DOOR_STATES.items():
            lookup[(_OBJECTS["door"], c, state)] = len(phrases)
            phrases.append(f"{prefix}{colour} door")
    structure = set()
    for name in ("wall", "goal", "lava"):
        for c in range(len(_COLOURS)):
            for state in range(3):
                lookup[(_OBJECTS[name], c, state)] = len(phrases)
        if name == "wall":
            structure.add(len(phrases))
        phrases.append(name)
    phrases.append("nothing")
    return phrases, lookup, structure


class SymbolicRetriever:
    name = "symbolic"
    input_key = SYMBOLIC_VIEW

    def __init__(self, view_size: int = 7):
        self.vocabulary, lookup, structure = _vocabulary()
        self.pad_item = len(self.vocabulary) - 1
        # One table lookup turns every cell into its phrase id (-1: nothing nameable) on tensors.
        self.table = torch.full((11, len(_COLOURS), 3), -1, dtype=torch.long)
        for (obj, colour, state), item in lookup.items():
            self.table[obj, colour, state] = item
        self.is_object = torch.ones(len(self.vocabulary), dtype=torch.bool)
        self.is_object[list(structure)] = False
        self.is_object[self.pad_item] = False
        # The agent sits at the bottom centre of its view: cell (x = view // 2, y = view - 1).
        x = torch.arange(view_size)[:, None]
        y = torch.arange(view_size)[None, :]
        self.closeness = 1.0 / (1.0 + (x - view_size // 2).abs() + (y - (view_size - 1)).abs()).float()

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, view, view, 3] uint8 symbolic views -> [B, V] salience (0 = not in view)."""
        cells = inputs.long().cpu()
        items = self.table[cells[..., 0].clamp(max=10), cells[..., 1].clamp(max=5), cells[..., 2].clamp(max=2)]
        if items.shape[1:] != self.closeness.shape:
            raise ValueError(f"expected views of {tuple(self.closeness.shape)} cells, got {tuple(items.shape[1:])}")
        batch = items.shape[0]
        closeness = self.closeness.expand(batch, -1, -1).reshape(batch, -1)
        items = items.reshape(batch, -1)
        valid = items >= 0
        out = torch.zeros(batch, len(self.vocabulary) + 1)
        # Invalid cells go to a scratch column that is dropped.
        target = torch.where(valid, items, len(self.vocabulary))
        out.scatter_reduce_(1, target, closeness, reduce="amax", include_self=True)
        out = out[:, :-1]
        return torch.where(self.is_object & (out > 0), out + 1.0, out)

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        return phrase_tokens(self.vocabulary, tokenizer)

    def identity(self) -> dict[str, Any]:
        return {"retriever": self.name, "vocabulary_size": len(self.vocabulary)}


def build_symbolic_retriever(
    config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device
) -> SymbolicRetriever:
    """SHELM's retriever=symbolic; SHELM's memory refuses it on an environment without the symbolic view it reads
    (its `input_key`)."""
    return SymbolicRetriever()
