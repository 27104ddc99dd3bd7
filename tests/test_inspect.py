"""`shelm inspect`: the readable memory page, opened in headless Chromium as a reader would see it."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import pytest
from conftest import train_run

from shelm.cli import main


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: run scripts/install-chromium.sh (part of the README's test command)"
    return found


def visible_text(page: Path, tmp_path: Path) -> str:
    """The page's rendered, visible text (`innerText` skips hidden elements), read from the DOM Chromium built."""
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load', () => { const pre = document.createElement('pre');"
        " pre.id = 'visible-text'; pre.textContent = document.body.innerText; document.body.appendChild(pre); });"
        "</script>"
    )
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="visible-text">(.*?)</pre>', result.stdout, flags=re.S)
    assert match, f"Chromium rendered no page (exit {result.returncode}): {result.stderr[-500:]}"
    return html.unescape(match.group(1))


@pytest.fixture(scope="module")
def shelm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SHELM with the packaged SmolLM2 (first block only) and the symbolic retriever on MiniGrid-MemoryS7."""
    run_dir = tmp_path_factory.mktemp("runs") / "shelm"
    return train_run(run_dir, "MiniGrid-MemoryS7-v0", "shelm", 128, "--set", "lm_layers=1", "--set", "topk=2")


def test_inspect_page_shows_the_words_of_the_first_steps(
    shelm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "page"
    assert main(["inspect", str(shelm_run), "--out", str(out), "--json", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["words_by"] == "symbolic" and summary["window_steps"] == 255
    first = summary["episodes"][0]["first_steps"]
    assert len(first) == 5 and all(len(step["words"]) == 2 for step in first)  # topk=2 words per step

    text = visible_text(Path(summary["page"]), tmp_path)
    assert "Words by: symbolic" in text
    for step in first[:3]:
        for word, score in step["words"]:
            assert f"{word} {score:.2f}" in text, f"step {step['t']}: '{word} {score:.2f}' not visible"

    frames = iio.imread(summary["video"])
    assert frames.shape[0] == summary["episodes"][0]["length"]


def test_inspect_of_a_memoryless_agent_says_so(cnn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(cnn_run), "--out", str(tmp_path), "--json", "--sampled"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "sampled"
    assert summary["words_by"] is None and summary["episodes"][0]["first_steps"][0]["words"] == []
    assert "has no language-model memory" in visible_text(tmp_path / "inspect.html", tmp_path)


def test_inspect_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err and "not a shelm run directory" in err
    assert list(tmp_path.iterdir()) == []


def test_the_instruction_is_in_the_memory_on_the_page_and_in_the_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """SHELM reads BabyAI's mission into its memory: the page shows it, the replay reproduces the memory with it
    and every step attends to it; evaluation runs with it."""
    run = train_run(
        tmp_path / "run",
        "BabyAI-GoToLocalS5N2-v0",
        "shelm",
        128,
        "--set",
        "lm_layers=1",
        "--set",
        "instruction=mission",
        "--set",
        "lm_dtype=float32",  # the replay then equals the memory to float rounding
    )
    memory = json.loads((run / "checkpoints" / "latest" / "trainer.json").read_text())["memory"]
    assert memory["instruction"] == "mission" and memory["instruction_tokens"] == 32
    assert main(["inspect", str(run), "--out", str(tmp_path / "page"), "--json", "--episodes", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    missions = [episode["instruction"] for episode in summary["episodes"]]
    assert all(re.fullmatch(r"go to (the|a) \w+ (key|ball|box)", mission) for mission in missions), missions
    text = visible_text(Path(summary["page"]), tmp_path)
    assert f"Instruction in the LM memory, before step 0 and for the whole episode: {missions[0]}" in text
    assert f"instruction: {missions[0]}" in text  # in every step's window

    assert main(["analyze", str(run), "--what", "attention", "--json", "--out", str(tmp_path / "analysis")]) == 0
    attention = json.loads(capsys.readouterr().out)
    lm_dtype = json.loads((run / "config.json").read_text())["config"]["lm_dtype"]
    assert attention["replay_max_abs_diff"] < (1e-4 if lm_dtype == "float32" else 5e-2)  # as test_analyze's
    assert attention["instruction"] in missions
    assert all(share > 0 for share in attention["layers"]["0"]["attention_to_instruction"])
    assert main(["eval", str(run), "--episodes", "4", "--json"]) == 0
