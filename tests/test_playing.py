"""Bounded, visible playing: `shelm eval`, `inspect` and `analyze` cap each episode's steps (`--max-episode-steps`),
say how many episodes the cap cut, say up front how much they will play, and show progress on stderr."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from shelm.cli import main
from shelm.config import INSPECT_MAX_EPISODE_STEPS
from shelm.progress import PlayProgress

PONG = "ale_py:ALE/Pong-v5"


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (one 8-step iteration) cnn on Pong with the default preprocessing."""
    run = tmp_path_factory.mktemp("runs") / "pong"
    argv = ["train", "--env", PONG, "--agent", "cnn", "--steps", "8", "--n-envs", "1", "--run-dir", str(run)]
    tiny = ["--set", "cnn_features=32", "--set", "critic_hidden=32", "--set", "n_steps=8", "--set", "n_minibatches=1"]
    assert main([*argv, "--quiet", *tiny]) == 0
    return run


def test_inspect_of_an_untrained_ale_run_with_defaults_finishes_and_says_its_cap(
    pong_run: Path, capsys: pytest.CaptureFixture
) -> None:
    start = time.monotonic()
    assert main(["inspect", str(pong_run), "--json"]) == 0
    assert time.monotonic() - start < 240
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["max_episode_steps"] == INSPECT_MAX_EPISODE_STEPS == 1000
    assert 0 < summary["episodes"][0]["length"] <= 1000
    assert "inspect: 1 episode(s), each capped at 1,000 steps" in err
    assert "inspect: played 1 episodes" in err


def test_inspect_says_when_it_cut_an_episode_at_the_cap(pong_run: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = pong_run / "capped"
    assert main(["inspect", str(pong_run), "--max-episode-steps", "30", "--out", str(out_dir)]) == 0
    out, err = capsys.readouterr()
    assert "episode 1: return" in out and "30 steps" in out and "capped at 30 steps (truncated" in out
    assert "each capped at 30 steps" in err
    assert "it reached the step cap" in (out_dir / "inspect.html").read_text()


def test_eval_caps_episodes_and_counts_them(pong_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", str(pong_run), "--episodes", "2", "--max-episode-steps", "12"]) == 0
    out, err = capsys.readouterr()
    assert out.count("2 of 2 episodes reached the cap of 12 steps and ended there as truncated") == 2
    assert "eval: 2 modes x 2 episodes, each capped at 12 steps" in err
    assert "4 of them reached the cap of 12 steps" in err
    assert main(["eval", str(pong_run), "--episodes", "1", "--max-episode-steps", "5", "--quiet", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["sampled"]["capped"] == 1


def test_robustness_says_what_it_plays_and_shows_progress(
    cnn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # MiniGrid-Empty-5x5's goal is at least 5 steps away: a cap of 3 cuts every episode.
    argv = ["analyze", str(cnn_run), "--what", "robustness", "--episodes", "1", "--max-episode-steps", "3"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "robustness: 13 levels x 2 modes x 1 episodes, each capped at 3 steps" in err.splitlines()[0]
    assert "robustness: played 26 episodes, 78 steps" in err and "26 of them reached the cap of 3 steps" in err
    assert "26 episode(s) reached the cap of 3 steps and ended there as truncated" in out
    result = json.loads((tmp_path / "robustness.json").read_text())
    assert (result["max_episode_steps"], result["capped_episodes"]) == (3, 26)
    assert main([*argv, "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_lines_count_episodes_and_estimate_the_time_left() -> None:
    stream = io.StringIO()
    progress = PlayProgress("robustness", total_episodes=4, cap=100, every_s=0.0, stream=stream)
    progress.announce("2 levels x 2 episodes, each capped at 100 steps")
    progress.update(50)
    progress.update(30, episodes=2, capped=1)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "robustness: 2 levels x 2 episodes, each capped at 100 steps"
    assert lines[1].startswith("robustness: 0/4 episodes, 50 steps, ") and "at most" in lines[1]
    assert lines[2].startswith("robustness: 2/4 episodes, 80 steps, ") and "steps/s, about" in lines[2]
    assert lines[3].startswith("robustness: played 2 episodes, 80 steps in ")
    assert lines[3].endswith("1 of them reached the cap of 100 steps (truncated)")
    quiet = PlayProgress("eval", 1, quiet=True, every_s=0.0, stream=stream)
    quiet.announce("x")
    quiet.update(1, 1)
    quiet.finish()
    assert stream.getvalue().splitlines() == lines


@pytest.mark.parametrize("command", ["eval", "inspect", "analyze"])
def test_a_negative_step_cap_exits_2_in_one_line(cnn_run: Path, command: str, capsys: pytest.CaptureFixture) -> None:
    extra = ["--what", "robustness"] if command == "analyze" else []
    assert main([command, str(cnn_run), *extra, "--max-episode-steps", "-4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-episode-steps -4" in err and ">= 1" in err
