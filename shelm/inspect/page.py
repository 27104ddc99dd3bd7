"""`shelm inspect`: the readable memory of a trained agent as one self-contained HTML page and an MP4.

The page shows, for every step of the recorded episodes: the frame, the words that went into the memory (with
scores, and which retriever produced them), the action, reward and value estimate, and the contents of the
LM's memory window at that step. Frames are embedded as PNG data, so the page is a single file to share. The
video draws the same words under each frame. The words of each episode also go to the run's TensorBoard.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shelm.evaluate import write_video
from shelm.files import write_atomic
from shelm.inspect.trace import Episode, Trace, Words, record
from shelm.runs import load_run_config
from shelm.tracking import WandbTracker

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { position: sticky; top: 0; background: #f4f4f4; }
img { image-rendering: pixelated; width: 160px; }
.words span { display: inline-block; background: #e8f0fe; border-radius: 4px; padding: 1px 6px; margin: 1px; }
.score { color: #666; font-size: 0.8em; }
.window { max-height: 160px; overflow-y: auto; font-size: 0.85em; color: #444; min-width: 18em; }
.num { font-variant-numeric: tabular-nums; }
"""


def words_text(words: Words) -> str:
    return ", ".join(f"{w} ({s:.2f})" for w, s in words) if words else "-"


def _png(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _words_html(words: Words) -> str:
    return (
        "".join(f'<span>{html.escape(w)} <span class="score">{s:.2f}</span></span>' for w, s in words) or "<em>-</em>"
    )


def _episode_html(index: int, episode: Episode, window_steps: int) -> str:
    rows = []
    for step in episode.steps:
        held = [] if episode.instruction is None else [f"instruction: {html.escape(episode.instruction)}"]
        window = "<br>".join(
            held
            + [
                f"{t}: {html.escape(', '.join(w for w, _ in words)) or '-'}"
                for t, words in episode.window(step.t, window_steps)
            ]
        )
        rows.append(
            f'<tr id="e{index}-t{step.t}"><td class="num">{step.t}</td>'
            f'<td><img alt="step {step.t}" src="data:image/png;base64,{_png(step.frame)}"></td>'
            f'<td class="words">{_words_html(step.words)}</td><td>{html.escape(step.action)}</td>'
            f'<td class="num">{step.reward:.2f}</td><td class="num">{step.value:.3f}</td>'
            f'<td><div class="window">{window or "-"}</div></td></tr>'
        )
    outcome = "success" if episode.success else "failure"
    instruction = (
        ""
        if episode.instruction is None
        else f'<p class="instruction">Instruction in the LM memory, before step 0 and for the whole episode: '
        f"<b>{html.escape(episode.instruction)}</b></p>"
    )
    return (
        f"<h2>Episode {index + 1}: return {episode.episode_return:.3f}, {len(episode.steps)} steps, {outcome}</h2>"
        f"{instruction}<table><tr><th>step</th><th>frame</th><th>words into memory</th><th>action</th><th>reward</th>"
        f"<th>value</th><th>LM memory window (last {window_steps} steps)</th></tr>{''.join(rows)}</table>"
    )


def page_html(trace: Trace) -> str:
    source = (
        f"Words by: <b>{html.escape(trace.retriever)}</b>"
        if trace.retriever
        else "This agent has no language-model memory; only actions and values are shown."
    )
    if trace.retriever == "symbolic":
        source += " (an oracle: MiniGrid's objects in view, read from the environment, standing in for CLIP)"
    episodes = "".join(_episode_html(i, e, trace.window_steps) for i, e in enumerate(trace.episodes))
    title = f"shelm inspect: {trace.agent} on {trace.env_id}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Run <code>{html.escape(trace.run_dir)}</code> at step {trace.global_step:,}. {source}. "
        f"{trace.mode.capitalize()} actions on evaluation seeds.</p>"
        f"{episodes}</body></html>"
    )


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame with a white strip beneath it holding `text` (wrapped to the frame's width)."""
    font = ImageFont.load_default(size=13)
    width = max(frame.shape[1], 320)
    image = Image.new("RGB", (width, frame.shape[0] + 48), "white")
    image.paste(Image.fromarray(frame), ((width - frame.shape[1]) // 2, 0))
    draw = ImageDraw.Draw(image)
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) > width - 8 and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    draw.multiline_text((4, frame.shape[0] + 4), "\n".join(lines[:3]), fill="black", font=font)
    return np.asarray(image)


def video_frames(trace: Trace) -> list[np.ndarray]:
    frames = []
    for i, episode in enumerate(trace.episodes):
        told = "" if episode.instruction is None else f" | {episode.instruction}"
        for step in episode.steps:
            text = f"ep {i + 1} t {step.t} {step.action} r {step.reward:.2f}{told} | {words_text(step.words)}"
            frames.append(_caption(step.frame, text))
    return frames


def trace_summary(trace: Trace, first_steps: int = 5) -> dict[str, Any]:
    return {
        "run_dir": trace.run_dir,
        "env_id": trace.env_id,
        "agent": trace.agent,
        "words_by": trace.retriever,
        "window_steps": trace.window_steps,
        "global_step": trace.global_step,
        "mode": trace.mode,
        "episodes": [
            {
                "return": e.episode_return,
                "length": len(e.steps),
                "success": e.success,
                "instruction": e.instruction,
                "first_steps": [
                    {"t": s.t, "words": s.words, "action": s.action, "value": s.value} for s in e.steps[:first_steps]
                ],
            }
            for e in trace.episodes
        ],
    }


def log_to_tensorboard(trace: Trace) -> None:
    """Each episode's words as a text table in the run's TensorBoard, at the checkpoint's step."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(trace.run_dir)
    try:
        for i, episode in enumerate(trace.episodes):
            lines = ["| step | words | action | reward |", "|---|---|---|---|"]
            lines += [f"| {s.t} | {words_text(s.words)} | {s.action} | {s.reward:.2f} |" for s in episode.steps]
            writer.add_text(f"memory/episode_{i + 1}", "\n".join(lines), trace.global_step)
    finally:
        writer.close()


def inspect_run(
    run_dir: Path,
    episodes: int = 1,
    out: Path | None = None,
    checkpoint: str = "latest",
    seed: int | None = None,
    sampled: bool = False,
) -> dict[str, Any]:
    """Record `episodes` episodes and write OUT/inspect.html and OUT/inspect.mp4 (OUT defaults to
    RUN_DIR/inspect). Returns a summary with the paths and the first steps' words."""
    trace = record(run_dir, episodes, checkpoint, seed, sampled)
    out = out or run_dir / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "inspect.html"
    write_atomic(page, page_html(trace).encode())
    video = write_video(out / "inspect", video_frames(trace), fps=4)
    log_to_tensorboard(trace)
    config = load_run_config(run_dir)
    if config.track:
        tracker = WandbTracker(config, run_dir)
        tracker.log_page(page, trace.global_step)
        tracker.finish()
    return {"page": str(page), "video": str(video), **trace_summary(trace)}


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    head = f"{summary['agent']} on {summary['env_id']} (step {summary['global_step']:,})"
    print(f"{head}, words by: {summary['words_by']}")
    for i, episode in enumerate(summary["episodes"]):
        outcome = "success" if episode["success"] else "failure"
        print(f"  episode {i + 1}: return {episode['return']:.3f}, {episode['length']} steps, {outcome}")
        if episode["instruction"] is not None:
            print(f"    instruction in memory: {episode['instruction']}")
        for step in episode["first_steps"]:
            print(f"    t={step['t']:<3} {step['action']:<8} {words_text([tuple(w) for w in step['words']])}")
    print(f"page:  {summary['page']}\nvideo: {summary['video']}")
