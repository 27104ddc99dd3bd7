"""The README's first command ends in `shelm quickstart`: train SHELM, evaluate it, write its memory page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shelm.cli import QUICKSTART_AGENT, main


def test_quickstart_trains_evaluates_and_writes_the_inspect_page(tmp_path: Path, capsys: pytest.CaptureFixture):
    run_dir = tmp_path / "quick"
    assert main(["quickstart", "--steps", "512", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"--agent {QUICKSTART_AGENT}" in out and "success_rate" in out
    assert "words by: symbolic" in out
    page = (run_dir / "inspect" / "inspect.html").read_text()
    # Every view of Empty-5x5 holds walls, so each step's word is the goal (objects rank first) or a wall.
    assert "Words by: <b>symbolic</b>" in page
    steps = re.findall(r'<td class="words"><span>([a-z ]+) <span class="score">', page)
    assert steps and set(steps) <= {"goal", "wall"}
    assert (run_dir / "inspect" / "inspect.mp4").stat().st_size > 0
