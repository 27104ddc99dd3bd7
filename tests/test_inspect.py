"""`shelm inspect`: the readable memory page, opened in headless Chromium as a reader would see it."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import train_run

from shelm.cli import main
from shelm.envs import EnvSettings, make_vec_env


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: run scripts/install-chromium.sh (part of the README's test command)"
    return found


def visible_text(page: Path, tmp_path: Path) -> str:
    """The page's rendered, visible text (`innerText` skips hidden elements), read from the DOM Chromium built."""
    return probe_dom(page, tmp_path, "document.body.innerText")


def probe_dom(page: Path, tmp_path: Path, expression: str) -> Any:
    """The JSON value of a JavaScript expression evaluated on the page Chromium rendered, once it has loaded (its
    images decoded)."""
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load', () => { const pre = document.createElement('pre');"
        f" pre.id = 'probe'; pre.textContent = JSON.stringify({expression}); document.body.appendChild(pre); }});"
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
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, flags=re.S)
    assert match, f"Chromium rendered no page (exit {result.returncode}): {result.stderr[-500:]}"
    return json.loads(html.unescape(match.group(1)))


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

    count = "selector => document.querySelectorAll(selector).length"
    rendered = probe_dom(
        Path(summary["page"]),
        tmp_path,
        f"(count => ({{text: document.body.innerText, rows: count('tr[id]'), images: count('img'),"
        f" crops: count('td.words img')}}))({count})",
    )
    text = rendered["text"]
    assert "Words by: symbolic (oracle: object names from the environment's state)" in text
    # The oracle's words come from no region of the frame: no crops, one image per step (its frame).
    assert rendered["crops"] == 0 and rendered["images"] == rendered["rows"] > 0 and "crop" not in text
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


# Per step row (the first five, as the summary's first_steps): the observation image under the frame and each
# word's crop, as the browser decoded them (natural size, drawn size and RGBA pixels read back through a canvas).
REGION_PROBE = """Array.from(document.querySelectorAll('tr[id]')).slice(0, 5).map(row => {
  const pixels = img => { const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
    return Array.from(context.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data); };
  const image = img => img && {width: img.naturalWidth, height: img.naturalHeight, drawn: img.clientWidth,
    alt: img.alt, title: img.title, pixels: pixels(img)};
  return {words: Array.from(row.querySelectorAll('td.words > span')).map(word => ({
            text: word.innerText, crop: image(word.querySelector(':scope > img.crop'))})),
          observation: image(row.querySelector('.view > img.obs')),
          outlines: row.querySelectorAll('.view > .box').length};
})"""


def _rgb(image: dict[str, Any]) -> np.ndarray:
    return np.asarray(image["pixels"], dtype=np.uint8).reshape(image["height"], image["width"], 4)[..., :3]


def test_the_page_shows_the_region_of_the_frame_each_word_came_from(
    tiny_llama_with_tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """SHELM with retriever=regions: beside each word the page shows the crop of the observation it was retrieved
    from (a MiniGrid cell: 8x8 pixels of the 56x56 view, enlarged only by CSS), whose pixels are that cell's; the
    observation under the frame is the one the agent and the classifier saw."""
    run = train_run(
        tmp_path / "run",
        "BabyAI-GoToObjS4-v0",  # MiniGrid's cells, in episodes of at most 16 steps: a short recording
        "shelm",
        32,
        "--set",
        "n_steps=8",
        "--set",
        f"lm={tiny_llama_with_tokenizer_dir}",
        "--set",
        "mem_len=8",
        "--set",
        "retriever=regions",
        "--set",
        "topk=2",
    )
    assert main(["inspect", str(run), "--out", str(tmp_path / "page"), "--json", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["words_by"] == "regions"
    rendered = probe_dom(Path(summary["page"]), tmp_path, f"{{text: document.body.innerText, rows: {REGION_PROBE}}}")
    assert "the part of the frame the classifier saw when it chose the word" in rendered["text"]

    envs = make_vec_env(EnvSettings("BabyAI-GoToObjS4-v0"), 1)
    first_obs = envs.reset(seed=3)[0][0]
    envs.close()
    rows, first = rendered["rows"], summary["episodes"][0]["first_steps"]
    assert len(rows) == len(first) > 0
    assert np.array_equal(_rgb(rows[0]["observation"]), first_obs)  # the view the agent (and the classifier) saw
    for t, (row, step) in enumerate(zip(rows, first, strict=True)):
        observation = _rgb(row["observation"])
        assert observation.shape == (56, 56, 3)
        assert len(row["words"]) == len(step["words"]) == len(step["regions"]) == 2  # topk=2
        assert 1 <= row["outlines"] <= 2  # each word's region outlined on the observation (two words may share one)
        for (word, _), region, shown in zip(step["words"], step["regions"], row["words"], strict=True):
            crop = shown["crop"]
            assert crop is not None, f"step {t}: the word '{word}' has no crop beside it"
            assert shown["text"].startswith(word)
            assert crop["alt"] == f"region {region} of the frame"
            match = re.fullmatch(r"r(\d)c(\d)", region)
            assert match, region
            assert crop["title"].startswith(crop["alt"])
            assert (crop["width"], crop["height"]) == (8, 8)  # the cell itself, not a resampled image
            assert crop["drawn"] >= 32  # enlarged by CSS
            top, left = 8 * int(match[1]), 8 * int(match[2])
            assert np.array_equal(_rgb(crop), observation[top : top + 8, left : left + 8]), f"step {t}: {crop['alt']}"
