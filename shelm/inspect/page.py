"""`shelm inspect`: the readable memory of a trained agent as one self-contained HTML page and an MP4.

The page shows, for every step of the recorded episodes: the frame, the words that went into the memory (with
scores, and which retriever produced them), the action, reward and value estimate, and the contents of the
LM's memory window at that step. Where the retriever locates its words (retriever=regions), each word carries the
crop of the observation it came from, and the observation is shown under the frame with those regions outlined.
Frames are embedded as PNG data, so the page is a single file to share. The video draws the same words under each
frame. The words of each episode also go to the run's TensorBoard.
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

from shelm.config import INSPECT_MAX_EPISODE_STEPS
from shelm.evaluate import own_step_limit, step_cap, write_video
from shelm.files import write_atomic
from shelm.inspect.trace import Episode, Step, Trace, Words, record
from shelm.memory.retrieval import FrameRegion
from shelm.memory.retrievers import RETRIEVERS, retriever_inputs
from shelm.progress import PlayProgress, cap_text
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
.words img.crop { width: 40px; vertical-align: middle; margin-right: 4px; border: 2px solid; }
.words .nocrop { display: inline-block; width: 40px; margin-right: 4px; color: #999; text-align: center; }
.view { position: relative; display: block; width: 112px; margin-top: 4px; line-height: 0; }
.view img { width: 100%; }
.view .box { position: absolute; box-sizing: border-box; border: 2px solid; }
.strip { white-space: nowrap; line-height: 0; }
.strip i { display: inline-block; width: 5px; height: 16px; border-right: 1px solid #eee; }
.attention { font-size: 0.85em; color: #444; min-width: 14em; }
"""
REGION_COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#8c564b"]
"""The outline of a step's i-th word's region, on its crop and on the observation (cycled past 8 words)."""


def words_text(words: Words) -> str:
    return ", ".join(f"{w} ({s:.2f})" for w, s in words) if words else "-"


def _png(frame: np.ndarray) -> str:
    """The frame as base64 PNG; a grey frame [H, W, 1] (`obs_grayscale`) as a greyscale image."""
    buffer = io.BytesIO()
    Image.fromarray(frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _region_text(region: FrameRegion, obs: np.ndarray) -> str:
    return (
        f"region {region.name} of the frame: rows {region.top}-{region.top + region.height - 1}, columns "
        f"{region.left}-{region.left + region.width - 1} of the {obs.shape[0]}x{obs.shape[1]} observation"
    )


def _crop_html(step: Step, i: int) -> str:
    """The crop of the observation the step's i-th word came from, at its own size (CSS scales it up)."""
    region = step.word_regions[i] if step.word_regions is not None else None
    if region is None:
        return '<span class="nocrop" title="no region of the frame offered this word">-</span>'
    crop = step.obs[region.top : region.top + region.height, region.left : region.left + region.width]
    title = html.escape(_region_text(region, step.obs))
    return (
        f'<img class="crop" alt="region {region.name} of the frame" title="{title}" '
        f'style="border-color: {REGION_COLOURS[i % len(REGION_COLOURS)]}" '
        f'src="data:image/png;base64,{_png(np.ascontiguousarray(crop))}">'
    )


def _words_html(step: Step) -> str:
    crops = step.word_regions is not None
    return (
        "".join(
            f'<span>{_crop_html(step, i) if crops else ""}{html.escape(w)} <span class="score">{s:.2f}</span></span>'
            for i, (w, s) in enumerate(step.words)
        )
        or "<em>-</em>"
    )


def _frame_html(step: Step) -> str:
    """The step's frame; where its words have regions, the observation under it with those regions outlined."""
    frame = f'<img alt="step {step.t}" src="data:image/png;base64,{_png(step.frame)}">'
    if step.word_regions is None:
        return frame
    height, width = step.obs.shape[:2]
    boxes = "".join(
        f'<i class="box" title="{html.escape(word)}: region {region.name}" '
        f'style="top: {100 * region.top / height:.4f}%; left: {100 * region.left / width:.4f}%; '
        f"height: {100 * region.height / height:.4f}%; "
        f'width: {100 * region.width / width:.4f}%; border-color: {REGION_COLOURS[i % len(REGION_COLOURS)]}"></i>'
        for i, ((word, _), region) in enumerate(zip(step.words, step.word_regions, strict=True))
        if region is not None
    )
    return (
        f'{frame}<div class="view"><img class="obs" alt="step {step.t}: the observation the classifier read" '
        f'src="data:image/png;base64,{_png(step.obs)}">{boxes}</div>'
    )


def _attention_html(step: Step) -> str:
    """A strip of the step's attention over its window, last layer, heads averaged: one cell per step it could see
    (oldest left, itself right), darker for more weight; then the steps it attended to most."""
    assert step.attention is not None
    weights = step.attention[-1].mean(axis=0)
    back = len(weights) - 1
    seen = [(step.t - back + j, float(w)) for j, w in enumerate(weights) if step.t - back + j >= 0]
    cells = "".join(
        f'<i title="step {t}: {w:.3f}" style="background: rgba(31, 119, 180, {w / max(weights.max(), 1e-9):.3f})"></i>'
        for t, w in seen
    )
    top = ", ".join(f"{t} ({w:.0%})" for t, w in sorted(seen, key=lambda tw: -tw[1])[:3])
    return f'<div class="attention"><div class="strip">{cells}</div>most: {top}</div>'


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
            f'<td class="frame">{_frame_html(step)}</td>'
            f'<td class="words">{_words_html(step)}</td><td>{html.escape(step.action)}</td>'
            f'<td class="num">{step.reward:.2f}</td><td class="num">{step.value:.3f}</td>'
            f'<td><div class="window">{window or "-"}</div></td>'
            + ("" if step.attention is None else f"<td>{_attention_html(step)}</td>")
            + "</tr>"
        )
    outcome = "success" if episode.success else "failure"
    outcome += " (it reached the step cap and was cut there, truncated)" if episode.capped else ""
    attends = "" if not episode.steps or episode.steps[0].attention is None else "<th>attention over its window</th>"
    instruction = (
        ""
        if episode.instruction is None
        else f'<p class="instruction">Instruction in the LM memory, before step 0 and for the whole episode: '
        f"<b>{html.escape(episode.instruction)}</b></p>"
    )
    return (
        f"<h2>Episode {index + 1}: return {episode.episode_return:.3f}, {len(episode.steps)} steps, {outcome}</h2>"
        f"{instruction}<table><tr><th>step</th><th>frame</th><th>words into memory</th><th>action</th><th>reward</th>"
        f"<th>value</th><th>LM memory window (last {window_steps} steps)</th>{attends}</tr>{''.join(rows)}</table>"
    )


def page_html(trace: Trace) -> str:
    source = (
        f"Words by: <b>{html.escape(trace.retriever)}</b>"
        if trace.retriever
        else "This agent has no language-model memory; only actions and values are shown."
    )
    if trace.retriever in RETRIEVERS:  # SHELM: say where its retriever's words come from
        source += f" ({html.escape(retriever_inputs(trace.retriever))})"
    located = next((r for e in trace.episodes for s in e.steps for r in s.word_regions or [] if r is not None), None)
    if located is not None:
        source += (
            ". Beside each word is its crop: the part of the frame the classifier saw when it chose the word, the "
            f"region ({located.height}x{located.width} pixels, shown enlarged) of the agent's observation whose "
            "classes offered the word with the highest probability. Under each frame is that observation, as the "
            "classifier read it, with each word's region outlined in the colour of the word's crop"
        )
    if any(s.attention is not None for e in trace.episodes for s in e.steps):
        source += (
            ". Its memory is trained: the last column shows where each step looked in its window of its own past "
            "steps (last layer, heads averaged; the step itself rightmost, darker for more weight)"
        )
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
        "max_episode_steps": trace.max_episode_steps,
        "episodes": [
            {
                "return": e.episode_return,
                "length": len(e.steps),
                "success": e.success,
                "capped": e.capped,
                "instruction": e.instruction,
                "first_steps": [
                    {"t": s.t, "words": s.words, "action": s.action, "value": s.value}
                    | ({} if s.word_regions is None else {"regions": [r and r.name for r in s.word_regions]})
                    for s in e.steps[:first_steps]
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
    max_episode_steps: int | None = INSPECT_MAX_EPISODE_STEPS,
    quiet: bool = True,
) -> dict[str, Any]:
    """Record `episodes` episodes and write OUT/inspect.html and OUT/inspect.mp4 (OUT defaults to
    RUN_DIR/inspect). Returns a summary with the paths and the first steps' words. An episode that reaches
    `max_episode_steps` (None or 0: the env's own limit) ends there as truncated: the page holds every step, and one
    episode of an Atari game can last tens of thousands. Unless `quiet`, how much it will play and its progress go
    to stderr."""
    cap = step_cap(max_episode_steps)
    progress = PlayProgress("inspect", episodes, cap, quiet)
    if not quiet:
        progress.announce(f"{episodes} episode(s), {cap_text(cap, own_step_limit(load_run_config(run_dir)))}")
    trace = record(run_dir, episodes, checkpoint, seed, sampled, cap, progress)
    progress.finish()
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
        if episode.get("capped"):
            outcome += f", capped at {summary['max_episode_steps']:,} steps (truncated; --max-episode-steps)"
        print(f"  episode {i + 1}: return {episode['return']:.3f}, {episode['length']} steps, {outcome}")
        if episode["instruction"] is not None:
            print(f"    instruction in memory: {episode['instruction']}")
        for step in episode["first_steps"]:
            print(f"    t={step['t']:<3} {step['action']:<8} {words_text([tuple(w) for w in step['words']])}")
    print(f"page:  {summary['page']}\nvideo: {summary['video']}")
