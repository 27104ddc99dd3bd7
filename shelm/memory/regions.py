"""SHELM's pixel retriever: words for the regions of a frame, chosen by how rare they have been.

A frozen ImageNet classifier (EfficientNet-Lite0, the offline image model) names a whole grid-world frame poorly:
almost every MiniGrid view is an "oscilloscope", so a key cue and a ball cue get the same word. At the scale of one
object it tells them apart (a key cell is not a ball cell to it). So this retriever classifies a grid of regions of
each frame, and picks the frame's k words by salience, never by reading the environment's state:

- the grid (`region_grid`): MiniGrid/BabyAI's cells by default (each cell one region), else a fixed R x C grid.
  The frame is cut into R x C equal regions of floor(H / R) x floor(W / C) pixels, centred (the few rows and
  columns left over at the borders belong to no region);
- each region is resized to `region_pixels` a side and classified; the result (its `CANDIDATES` most probable
  classes) is memoized by the region's pixels. Grid worlds draw a handful of distinct cells, so after the first
  frames nearly every region is a memo hit and the classifier rarely runs; on frames that never repeat the
  static parts (background, walls, score boards) still do;
- a word's salience in a frame is its best probability over the frame's regions times its rarity, an inverse
  document frequency over the frames seen so far: log((frames + 1) / (frames that showed it + 1)), plus a tiny
  floor so that a frame whose words all show in every frame still ranks them by probability. A word
  shows in a frame when it is among one region's candidates. What every frame shows (the floor, the walls, the
  agent's own cell) fades, and what is seen seldom (the cue of a memory task) stands out, even where the
  classifier's best word for it is also the best word for something common: its other candidates are rare.
  Chosen by measurement on MiniGrid-MemoryS11's frames (`shelm retrieval` scores a retriever's words against the
  environment's state): the top word picked this way names the key cue and the ball cue apart at every region size
  tried (64 to 224 pixels), while each region's own best word gives both the same word at most sizes, and so
  does a word's probability weighted by an inverse document frequency that counts only each region's best word.
  At 128 pixels (the default) the key cue, the ball cue and the frames without a cue get three different words.

The rarity counts are the retriever's state: they go into the checkpoint (`state_dict`) and keep counting in
evaluation, where they have long since settled. Because a frame's words depend on the frames before it, the
memory cannot memoize whole frames' words; this retriever memoizes per region instead (`memo`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory.caches import MemoCache
from shelm.memory.image_models import imagenet_class_names
from shelm.memory.imagenet import EfficientNetLite0
from shelm.memory.retrieval import phrase_tokens

CANDIDATES = 3
"""Classes kept per region: the words a region can give the frame."""
CELLS = "cells"
"""The `region_grid` value that cuts the frame into cells of `minigrid_tile_size` pixels."""
RARITY_FLOOR = 1e-6
"""The rarity of a word that every frame shows: it only breaks ties among such words."""
MIN_PIXELS = 32
"""The smallest input EfficientNet-Lite0's strided convolutions accept."""


@dataclass(frozen=True)
class RegionGrid:
    """How a frame is cut into regions: `rows` x `cols` equal regions, or cells of `cell` pixels a side."""

    rows: int = 0
    cols: int = 0
    cell: int = 0

    def shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(rows, cols, region height, region width) for a frame of height x width pixels."""
        rows, cols = (height // self.cell, width // self.cell) if self.cell else (self.rows, self.cols)
        if rows < 1 or cols < 1 or height < rows or width < cols:
            raise ShelmError(f"a {height}x{width} frame cannot be cut into {self.describe()} regions")
        return rows, cols, height // rows, width // cols

    def boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(top, left, height, width) of each region, row by row."""
        rows, cols, h, w = self.shape(height, width)
        top, left = (height - rows * h) // 2, (width - cols * w) // 2
        return [(top + r * h, left + c * w, h, w) for r in range(rows) for c in range(cols)]

    def crops(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> [B, R, h, w, C]: every region of every frame."""
        batch, height, width, channels = frames.shape
        rows, cols, h, w = self.shape(height, width)
        top, left = (height - rows * h) // 2, (width - cols * w) // 2
        inner = frames[:, top : top + rows * h, left : left + cols * w]
        regions = inner.reshape(batch, rows, h, cols, w, channels).permute(0, 1, 3, 2, 4, 5)
        return regions.reshape(batch, rows * cols, h, w, channels)

    def describe(self) -> str:
        return f"cells of {self.cell} pixels" if self.cell else f"{self.rows}x{self.cols}"


def parse_grid(config: TrainConfig) -> RegionGrid:
    """The `region_grid` setting ('cells' or 'RxC', 'auto' already resolved by the agent spec) as a grid."""
    if config.region_grid == CELLS:
        return RegionGrid(cell=config.minigrid_tile_size)
    match = re.fullmatch(r"(\d+)x(\d+)", config.region_grid)
    if match is None or min(int(match[1]), int(match[2])) < 1:
        raise ShelmError(
            f"--set region_grid={config.region_grid}: give ROWSxCOLS (e.g. 4x4), '{CELLS}' (MiniGrid's cells) or auto"
        )
    return RegionGrid(rows=int(match[1]), cols=int(match[2]))


class RegionRetriever:
    """ImageNet words per region, the frame's k words by rarity-weighted probability (see the module docstring)."""

    name = "regions"
    input_key = None
    pad_item = None

    def __init__(self, classifier: EfficientNetLite0, grid: RegionGrid, pixels: int, memo_size: int):
        self.classifier, self.grid, self.pixels = classifier, grid, pixels
        self.vocabulary = imagenet_class_names()
        self.memo = MemoCache(memo_size)
        """Per region's pixels, its CANDIDATES (probabilities, class ids)."""
        self.frames_seen = torch.zeros((), dtype=torch.float64)
        self.frames_showing = torch.zeros(len(self.vocabulary), dtype=torch.float64)
        """Per word, the frames seen so far in which it was among a region's candidates."""

    def region_candidates(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, H, W, C] -> ([B, R, CANDIDATES] probabilities, [B, R, CANDIDATES] class ids), memoized."""
        regions = self.grid.crops(frames.cpu())
        batch, count = regions.shape[:2]

        def classify(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            values, ids = self.classifier.probabilities(crops, self.pixels).float().topk(CANDIDATES, dim=-1)
            return values.cpu(), ids.cpu()

        values, ids = self.memo(regions.reshape(batch * count, *regions.shape[2:]), classify)
        return values.reshape(batch, count, CANDIDATES), ids.reshape(batch, count, CANDIDATES)

    def rarity(self) -> torch.Tensor:
        """[V]: each word's inverse document frequency over the frames seen so far, plus RARITY_FLOOR (so a frame
        whose words all show in every frame still ranks them by probability)."""
        return torch.log((self.frames_seen + 1.0) / (self.frames_showing + 1.0)) + RARITY_FLOOR

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> [B, V] salience: per word, its best region probability times its rarity (0 for a
        word no region offers). Counts the frames afterwards, so the frames of one batch do not rank each other."""
        values, ids = self.region_candidates(inputs)
        batch = values.shape[0]
        best = torch.zeros(batch, len(self.vocabulary))
        best.scatter_reduce_(1, ids.reshape(batch, -1), values.reshape(batch, -1), reduce="amax")
        salience = best * self.rarity().float()
        self.frames_showing += (best > 0).sum(0)
        self.frames_seen += batch
        return salience.to(inputs.device)

    def word_regions(self, frames: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[B, k] word ids of uint8 frames [B, H, W, C] -> [B, k]: the region each word came from (the one that
        offered it with the highest probability; -1 for a word no region offered). For reading the memory: it
        does not count the frames."""
        values, candidates = self.region_candidates(frames)
        offered = candidates[:, :, None, :] == ids.cpu()[:, None, :, None]  # [B, R, k, CANDIDATES]
        probability = torch.where(offered, values[:, :, None, :], torch.zeros(())).amax(-1)  # [B, R, k]
        best, region = probability.max(1)
        return torch.where(best > 0, region, torch.full_like(region, -1))

    def region_boxes(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        return self.grid.boxes(height, width)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"frames_seen": self.frames_seen.clone(), "frames_showing": self.frames_showing.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"frames_seen", "frames_showing"} or state["frames_showing"].shape != (len(self.vocabulary),):
            raise ValueError(f"expected the rarity counts frames_seen and frames_showing, got {sorted(state)}")
        self.frames_seen = state["frames_seen"].to(torch.float64).clone()
        self.frames_showing = state["frames_showing"].to(torch.float64).clone()

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        return phrase_tokens(self.vocabulary, tokenizer)

    def identity(self) -> dict[str, Any]:
        return {
            "retriever": self.name,
            "retriever_sha256": self.classifier.sha256,
            "vocabulary_size": len(self.vocabulary),
            "region_grid": self.grid.describe(),
            "region_pixels": self.pixels,
            "region_candidates": CANDIDATES,
        }


def build_region_retriever(
    config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device
) -> RegionRetriever:
    """SHELM's retriever=regions: it reads the image, whatever the environment."""
    grid = parse_grid(config)
    if config.region_pixels < MIN_PIXELS:
        raise ShelmError(
            f"--set region_pixels={config.region_pixels}: the classifier needs at least {MIN_PIXELS} pixels a side; "
            "use 64 or 96"
        )
    return RegionRetriever(EfficientNetLite0(device), grid, config.region_pixels, config.memo_size)
