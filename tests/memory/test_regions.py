"""SHELM's pixel retriever (retriever=regions): the grid it cuts, the per-region memo, the rarity rule that picks the
frame's words, its state in the checkpoint, and what it says on MiniGrid-Memory's cue with the real classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from shelm.agents import resolve_config
from shelm.cli import main
from shelm.envs import minigrid, probe_env
from shelm.errors import ShelmError
from shelm.memory.caches import cached_efficientnet_lite0
from shelm.memory.imagenet import EfficientNetLite0
from shelm.memory.regions import CANDIDATES, RegionGrid, RegionRetriever, parse_grid
from shelm.memory.retrieval import LocatingRetriever, StatefulRetriever
from shelm.memory.shelm import build_shelm_memory

CPU = torch.device("cpu")


class ColourClassifier:
    """A stand-in for the image model: a region's class is its red value, with probability 0.9 (the next class gets
    0.1). Counts the regions it is asked to classify."""

    sha256 = "colour"

    def __init__(self) -> None:
        self.classified = 0

    def probabilities(self, crops: torch.Tensor, size: int) -> torch.Tensor:
        self.classified += len(crops)
        red = crops[..., 0].float().mean(dim=(1, 2)).long()
        probabilities = torch.zeros(len(crops), 1000)
        probabilities[torch.arange(len(crops)), red] = 0.9
        probabilities[torch.arange(len(crops)), red + 1] = 0.1
        return probabilities


def _frame(cells: list[list[int]], cell: int = 2) -> torch.Tensor:
    """A uint8 frame [H, W, 3] whose grid cells have the given red values."""
    red = torch.tensor(cells, dtype=torch.uint8).repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    return torch.stack([red, torch.zeros_like(red), torch.zeros_like(red)], dim=-1)


def _retriever() -> tuple[RegionRetriever, ColourClassifier]:
    classifier = ColourClassifier()
    return RegionRetriever(classifier, RegionGrid(rows=2, cols=2), 64, memo_size=100), classifier  # type: ignore[arg-type]


def test_the_grid_cuts_equal_centred_regions():
    frame = torch.arange(11 * 11 * 3, dtype=torch.int64).reshape(1, 11, 11, 3)
    grid = RegionGrid(rows=3, cols=3)
    assert grid.shape(11, 11) == (3, 3, 3, 3)
    boxes = grid.boxes(11, 11)
    assert boxes[0] == (1, 1, 3, 3) and boxes[4] == (4, 4, 3, 3) and boxes[8] == (7, 7, 3, 3)
    crops = grid.crops(frame)
    assert crops.shape == (1, 9, 3, 3, 3)
    for index, (top, left, h, w) in enumerate(boxes):
        assert torch.equal(crops[0, index], frame[0, top : top + h, left : left + w])


def test_cells_are_minigrid_tiles():
    grid = RegionGrid(cell=8)
    assert grid.shape(56, 56) == (7, 7, 8, 8)
    assert grid.boxes(56, 56)[7 * 6 + 3] == (48, 24, 8, 8)  # the agent's cell, bottom centre
    with pytest.raises(ShelmError, match="cannot be cut"):
        RegionGrid(rows=10, cols=10).shape(5, 5)


@pytest.mark.parametrize(("value", "expected"), [("cells", RegionGrid(cell=8)), ("3x5", RegionGrid(rows=3, cols=5))])
def test_region_grid_setting(value, expected):
    config, _ = resolve_config("MiniGrid-Empty-5x5-v0", "shelm", {"retriever": "regions", "region_grid": value})
    assert parse_grid(config) == expected


@pytest.mark.parametrize("value", ["4", "0x3", "axb", "4x4x4"])
def test_a_bad_region_grid_is_refused_in_one_line(value):
    config, _ = resolve_config("MiniGrid-Empty-5x5-v0", "shelm", {"retriever": "regions", "region_grid": value})
    with pytest.raises(ShelmError, match=f"region_grid={value}: give ROWSxCOLS"):
        parse_grid(config)


def test_auto_resolves_to_cells_on_grid_worlds_and_words_from_pixels_elsewhere():
    config, _ = resolve_config("MiniGrid-MemoryS7-v0", "shelm", {"retriever": "regions"})
    assert config.region_grid == "cells"
    config, _ = resolve_config("shelm/RandomMaze-v0", "shelm", {})
    assert (config.retriever, config.region_grid) == ("regions", "4x4")
    config, _ = resolve_config("MiniGrid-MemoryS7-v0", "shelm", {})
    assert (config.retriever, config.region_grid) == ("symbolic", "auto")  # the grid means nothing there


def test_a_rare_region_outranks_what_every_frame_shows():
    retriever, _ = _retriever()
    common = [[10, 20], [10, 20]]
    for _ in range(50):
        retriever.scores(_frame(common)[None])
    salience = retriever.scores(_frame([[10, 20], [10, 40]])[None])[0]
    # 10, 11, 20, 21 showed in all 50 frames before: rarity log(51 / 51) = 0 plus the floor; 40 and 41 are new.
    assert int(salience.argmax()) == 40
    assert salience[40] == pytest.approx(0.9 * np.log(51 / 1), rel=1e-5)
    assert salience[41] == pytest.approx(0.1 * np.log(51 / 1), rel=1e-5)
    assert salience[10] == pytest.approx(0.9 * 1e-6, rel=1e-3)
    assert salience[20] == pytest.approx(0.9 * 1e-6, rel=1e-3)
    assert int((salience > 0).sum()) == 6  # only the words the regions offered
    assert float(retriever.frames_seen) == 51 and float(retriever.frames_showing[40]) == 1


def test_with_nothing_rare_the_most_probable_word_wins():
    retriever, _ = _retriever()
    for _ in range(10):
        salience = retriever.scores(_frame([[10, 10], [10, 10]])[None])[0]
    assert int(salience.argmax()) == 10


def test_frames_of_one_batch_do_not_rank_each_other():
    retriever, _ = _retriever()
    batch = torch.stack([_frame([[10, 20], [30, 40]]), _frame([[10, 20], [30, 40]])])
    salience = retriever.scores(batch)
    assert torch.equal(salience[0], salience[1])
    assert float(retriever.frames_seen) == 2


def test_each_distinct_region_is_classified_once():
    retriever, classifier = _retriever()
    for value in (10, 20, 10, 20, 10):
        retriever.scores(_frame([[value, value], [value, 30]])[None])
    assert classifier.classified == 3  # 10, 20 and 30
    # Misses: the three 10s and the 30 of the first frame, the three 20s of the second (a region repeated within
    # one call is computed once but is not a hit).
    assert retriever.memo.take_hit_rate() == pytest.approx(13 / 20)


def test_word_regions_name_the_region_that_offered_each_word_and_count_nothing():
    retriever, _ = _retriever()
    frame = _frame([[10, 20], [30, 40]])[None]
    ids = torch.tensor([[40, 21, 10, 999]])
    assert retriever.word_regions(frame, ids).tolist() == [[3, 1, 0, -1]]
    assert float(retriever.frames_seen) == 0
    assert isinstance(retriever, LocatingRetriever) and isinstance(retriever, StatefulRetriever)


def test_the_rarity_counts_round_trip_through_state_dict():
    first, _ = _retriever()
    frames = [_frame([[10, 20], [30, v]])[None] for v in (40, 40, 50, 40, 60)]
    for frame in frames[:3]:
        first.scores(frame)
    second, _ = _retriever()
    second.load_state_dict(first.state_dict())
    for frame in frames[3:]:
        assert torch.equal(first.scores(frame), second.scores(frame))
    with pytest.raises(ValueError, match="rarity counts"):
        second.load_state_dict({"frames_seen": torch.zeros(())})


def test_the_identity_records_the_grid_and_the_model():
    retriever, _ = _retriever()
    assert retriever.identity() == {
        "retriever": "regions",
        "retriever_sha256": "colour",
        "vocabulary_size": 1000,
        "region_grid": "2x2",
        "region_pixels": 64,
        "region_candidates": CANDIDATES,
    }


def _memory_frames(episodes: int, seed: int) -> list[tuple[np.ndarray, bool, int]]:
    """(frame, the cue's cell in view, the cue) for a uniformly random policy on MiniGrid-MemoryS11."""
    env = minigrid.make("MiniGrid-MemoryS11-v0", 8)
    rng = np.random.default_rng(seed)
    out = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        for _ in range(40):
            world = env.unwrapped
            out.append((obs, bool(world.in_view(1, world.height // 2 - 1)), int(info[minigrid.MEMORY_CUE])))
            obs, _, terminated, truncated, info = env.step(int(rng.integers(0, 3)))
            if terminated or truncated:
                break
    return out


def test_on_minigrid_memory_the_words_from_pixels_tell_the_key_cue_from_the_ball_cue():
    """The real classifier with the defaults: at every frame that shows the cue, the top word names the cue's object
    (one word for a key cue, another for a ball cue) once the rarity counts have seen a few episodes."""
    config, _ = resolve_config("MiniGrid-MemoryS11-v0", "shelm", {"retriever": "regions"})
    retriever = RegionRetriever(EfficientNetLite0(CPU), parse_grid(config), config.region_pixels, 1000)
    words: dict[int, set[int]] = {5: set(), 6: set()}
    for index, (frame, cue_in_view, cue) in enumerate(_memory_frames(30, seed=3)):
        word = int(retriever.scores(torch.as_tensor(frame)[None])[0].argmax())
        if cue_in_view and index >= 200:
            words[cue].add(word)
    assert len(words[5]) == 1 and len(words[6]) == 1 and words[5] != words[6]
    assert cached_efficientnet_lite0.cache_info().currsize == 1


def test_shelm_with_regions_checkpoints_its_counts_and_reports_its_memo(tmp_path, tiny_llama_with_tokenizer_dir):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "shelm", "--steps", "128", "--n-envs", "2"]
    argv += ["--set", f"lm={tiny_llama_with_tokenizer_dir}", "--set", "mem_len=4", "--set", "n_steps=32"]
    argv += ["--set", "retriever=regions", "--set", "cnn_features=32", "--set", "critic_hidden=32"]
    argv += ["--set", "actor_hidden=32", "--run-dir", str(run), "--quiet"]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["retriever"], config["region_grid"], config["region_pixels"]) == ("regions", "cells", 128)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= row["memo_hit_rate"] <= 1 for row in rows) and rows[-1]["memo_hit_rate"] > 0.9
    state = load_file(run / "checkpoints" / "latest" / "memory.safetensors")
    # Each of the 2 envs' frames: the first observation and the one after each of its 64 steps.
    assert float(state["retriever.frames_seen"]) == 2 * (1 + 64)
    assert float(state["retriever.frames_showing"].max()) == 130  # the floor shows in every frame
    trainer = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())
    assert trainer["memory"]["retriever"] == "regions" and trainer["memory"]["region_grid"] == "cells of 8 pixels"
    settings = {"lm": str(tiny_llama_with_tokenizer_dir), "retriever": "regions", "mem_len": 4}
    resolved, _ = resolve_config("MiniGrid-MemoryS7-v0", "shelm", settings)
    memory = build_shelm_memory(resolved, probe_env(resolved), CPU)
    memory.load_state_dict(state)
    assert torch.equal(memory.retriever.frames_showing, state["retriever.frames_showing"])
