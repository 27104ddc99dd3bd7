"""`shelm retrieval`: the words of SHELM's retrievers decoded back into what the frames showed. The symbolic oracle
names the nearest object, so it must decode perfectly; the decoder is checked on hand-made data; bad input is one
line, exit code 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shelm.cli import main
from shelm.inspect.retrieval import NOTHING, MajorityTable, decode, salient_objects

MEMORY = "MiniGrid-MemoryS11-v0"


@pytest.fixture(scope="module")
def memory_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("retrieval") / "memory.json"
    argv = ["retrieval", "--env", MEMORY, "--retrievers", "symbolic,regions", "--episodes", "6", "--seed", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_symbolic_oracle_decodes_the_nearest_object_and_the_cue_perfectly(memory_report):
    symbolic = memory_report["retrievers"][0]
    assert symbolic["retriever"] == "symbolic" and symbolic["inputs"].startswith("oracle")
    for target in ("type", "colour", "both"):
        assert symbolic["object"][target]["accuracy"] == 1.0, target
    assert symbolic["cue"]["accuracy"] == 1.0
    # Both cues were among the frames the decoder was fit on and scored on, so 1.0 is not a one-class accident.
    assert symbolic["cue"]["chance"] < 1.0
    assert set(symbolic["cue_words"]) == {"key", "ball"}
    assert symbolic["cue_words"]["key"]["words"] == ["green key"]


def test_the_report_has_every_number_in_range(memory_report):
    assert memory_report["env_id"] == MEMORY and memory_report["episodes"] == 6
    assert memory_report["frames"] == memory_report["frames_fit"] + memory_report["frames_scored"]
    assert 0 < memory_report["cue_frames"] < memory_report["frames"]
    assert [row["retriever"] for row in memory_report["retrievers"]] == ["symbolic", "regions"]
    for row in memory_report["retrievers"]:
        assert row["topk"] == 1 and row["seconds_per_frame"] > 0 and row["distinct_word_tuples"] >= 1
        for result in [*row["object"].values(), row["cue"]]:
            assert set(result) == {"accuracy", "chance", "frames_fit", "frames_scored", "unseen_in_fit"}
            for key in ("accuracy", "chance", "unseen_in_fit"):
                assert 0.0 <= result[key] <= 1.0, key
    assert memory_report["retrievers"][1]["inputs"] == "pixels"
    assert memory_report["retrievers"][1]["identity"]["region_grid"] == "cells of 8 pixels"


def test_topk_is_a_setting_and_the_table_is_printed(tmp_path, capsys):
    out = tmp_path / "k2.json"
    argv = ["retrieval", "--env", "MiniGrid-MemoryS7-v0", "--retrievers", "symbolic", "--episodes", "4"]
    assert main([*argv, "--set", "topk=2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["retrievers"][0]["topk"] == 2
    printed = capsys.readouterr().out
    assert "| symbolic | oracle: object names from the environment's state | 2 |" in printed


def test_the_majority_decoder_scores_hand_made_data_exactly():
    keys = ["a", "a", "a", "b", "b", "b", "a", "b", "c", "c", "a"]
    accepted = [{"x"}, {"x"}, {"y"}, {"y"}, {"y"}, {"x", "y"}, {"x"}, {"x"}, {"y"}, {"x"}, {"x", "y"}]
    fit = [True] * 6 + [False] * 5
    # Fit (a tie gives half a vote to each): a -> x (2 of 3), b -> y (2.5 of 3), unseen -> y (3.5 votes of 6).
    # Scored: a/x right,
    # b/x wrong, c/y right (the fallback), c/x wrong, a/{x, y} right. Chance (always y): wrong, wrong, right, wrong,
    # right.
    result = decode(keys, accepted, fit)
    assert (result.accuracy, result.chance, result.fit, result.scored, result.unseen) == (0.6, 0.4, 6, 5, 0.4)
    assert MajorityTable(["k", "k"], [{"b"}, {"a"}])("k") == "a"  # a tie between labels goes to the first in order
    # One vote per example: x 1, y 1 (two halves), z 1, so x; counting a whole vote per right label would say y.
    assert MajorityTable(["k"] * 3, [{"x"}, {"y", "z"}, {"y", "z"}])("k") == "x"
    assert decode(keys, accepted, [True] * 11).accuracy is None  # nothing left to score


def test_the_label_is_the_nearest_object_and_ties_keep_every_nearest():
    view = np.zeros((7, 7, 3), dtype=np.uint8)
    view[..., 0] = 1  # empty
    view[0, :, 0] = 2  # a wall, never a label
    assert salient_objects(view) == {(NOTHING, NOTHING)}
    view[3, 0] = (7, 2, 0)  # a blue box 6 cells ahead
    assert salient_objects(view) == {("box", "blue")}
    view[3, 4] = (6, 0, 0)  # a red ball 2 cells ahead
    view[1, 6] = (5, 4, 0)  # a yellow key 2 cells to the left
    assert salient_objects(view) == {("key", "yellow"), ("ball", "red")}
    view[3, 6] = (5, 1, 0)  # the agent's own cell: the green key it carries
    assert salient_objects(view) == {("key", "green")}


BAD = [
    (["--env", MEMORY, "--retrievers", "symbolic", "--episodes", "0"], "--episodes 0: play at least 2"),
    (["--env", "MiniGrid-Nope-v0", "--retrievers", "symbolic"], "unknown env 'MiniGrid-Nope-v0'"),
    (["--env", "CartPole-v1", "--retrievers", "imagenet"], "--env CartPole-v1: the words are scored with MiniGrid"),
    (["--env", MEMORY, "--retrievers", "symbolic,wordy"], "unknown retriever 'wordy'; expected some of symbolic"),
    (["--env", MEMORY, "--retrievers", "symbolic", "--set", "topk=zero"], "topk"),
    (["--env", MEMORY, "--retrievers", "symbolic", "--set", "retriever=imagenet"], "with --retrievers instead"),
    (["--env", MEMORY, "--retrievers", "regions", "--set", "region_grid=100x100"], "choose fewer regions"),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys, argv, fragment):
    out = tmp_path / "retrieval.json"
    assert main(["retrieval", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("shelm: error: ") and fragment in err, err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
