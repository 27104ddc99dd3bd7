"""SHELM's observation -> words step: a retriever scores a fixed vocabulary of words, and the top k win.

A `Retriever` scores every item of its vocabulary (a word or a short phrase) for a batch of observations and
returns a tensor; top-k selection, the memo cache and the lookup of the items' LM input vectors stay on
tensors too. Text is only produced when someone asks to read the memory (`SHELMMemory.last_words`); the
reference argsorted on the CPU in numpy and decoded strings at every step. `shelm.memory.retrievers` names the
retrievers the `retriever` setting chooses from.

Items become LM inputs as follows: an item's text (a parenthesised gloss such as ImageNet's
"kite (bird of prey)" removed) is tokenised by the LM's tokenizer as a word inside a sentence (a leading space),
and its input vector is the mean of those tokens' input embeddings. A single-token word is therefore exactly
its token's embedding, and every item is one LM position whatever its length, so each step adds exactly k
positions to the memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from shelm.errors import ShelmError
from shelm.memory.caches import MemoCache


class Retriever(Protocol):
    name: str
    """Its name in the retriever registry (e.g. 'symbolic'): the `retriever` setting, shown next to every word."""
    vocabulary: list[str]
    """The text of each item, index = item id."""
    input_key: str | None
    """None: the retriever reads the image observation; otherwise the info key it reads (its memo-cache key)."""
    pad_item: int | None
    """An item ("nothing") that fills the k slots when fewer than k items score above zero; None if scores are
    always meaningful (similarities, probabilities)."""

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, ...] retriever inputs -> [B, V] scores, higher = better description."""
        ...

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        """The LM token ids each item is made of (see the module docstring)."""
        ...

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to refuse a different retriever (name, model hash, vocabulary size)."""
        ...


@runtime_checkable
class StatefulRetriever(Protocol):
    """A retriever whose scores depend on the inputs it has seen before, not only on the current one (e.g. how rare
    a word has been). The memory then calls it on every input instead of memoizing its results, reports its own
    memo's hit rate, and saves its state in the checkpoint."""

    memo: MemoCache
    """Its memo of what is a function of the input alone (e.g. per region of a frame)."""

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


@runtime_checkable
class LocatingRetriever(Protocol):
    """A retriever that can say where in the frame each of its words came from, for the inspect page."""

    def word_regions(self, frames: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[B, k] word ids of uint8 frames [B, H, W, C] -> [B, k] region index (-1: none); it changes no state."""
        ...

    def region_boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(top, left, height, width) of each region of a height x width frame."""
        ...


@dataclass(frozen=True)
class FrameRegion:
    """One region of a frame, where a word came from: its row and column among the frame's regions (from 0, top
    left first) and its box in pixels."""

    row: int
    col: int
    top: int
    left: int
    height: int
    width: int

    @property
    def name(self) -> str:
        """'r3c1': row 3, column 1."""
        return f"r{self.row}c{self.col}"


def frame_regions(boxes: list[tuple[int, int, int, int]]) -> list[FrameRegion]:
    """A `LocatingRetriever`'s region boxes (top, left, height, width), named by their row and column: the rank of
    their top among the regions' tops, and of their left among the lefts."""
    tops, lefts = sorted({box[0] for box in boxes}), sorted({box[1] for box in boxes})
    return [FrameRegion(tops.index(top), lefts.index(left), top, left, h, w) for top, left, h, w in boxes]


def phrase_tokens(phrases: list[str], tokenizer: Any) -> list[list[int]]:
    """Token ids of each phrase as a word inside a sentence; a parenthesised gloss is dropped."""
    out = []
    for phrase in phrases:
        text = re.sub(r"\s*\(.*?\)", "", phrase).strip()
        if not text:
            raise ShelmError(f"the item '{phrase}' has no word outside its parenthesised gloss")
        ids = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ShelmError(f"the LM's tokenizer turns the word '{phrase}' into no tokens; use another LM")
        out.append(list(ids))
    return out


def item_vectors(token_ids: list[list[int]], embeddings: torch.Tensor) -> torch.Tensor:
    """[V, d]: per item, the mean input embedding of its tokens."""
    width = max(len(ids) for ids in token_ids)
    index = torch.zeros(len(token_ids), width, dtype=torch.long)
    weight = torch.zeros(len(token_ids), width)
    for i, ids in enumerate(token_ids):
        index[i, : len(ids)] = torch.tensor(ids)
        weight[i, : len(ids)] = 1.0 / len(ids)
    index, weight = index.to(embeddings.device), weight.to(embeddings.device)
    # Averaged in float32 whatever the LM's dtype (a bfloat16 sum would cancel digits), then in the LM's dtype.
    return (embeddings[index].float() * weight[..., None]).sum(1).to(embeddings.dtype)


def top_k(scores: torch.Tensor, k: int, pad_item: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best items per row, best first: ([B, k] ids, [B, k] scores). With a pad item, slots whose score
    is not positive (fewer than k things to name) become the pad item with score 0."""
    values, ids = scores.topk(k, dim=-1)
    if pad_item is not None:
        empty = values <= 0
        ids = ids.masked_fill(empty, pad_item)
        values = values.masked_fill(empty, 0.0)
    return ids, values
