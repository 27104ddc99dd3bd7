"""Where does the frozen LM look? Its attention over one episode, step by step.

The episode's LM inputs (as recorded during the rollout) are replayed through the frozen LM in one pass
(`attention` of the memory), with a mask that gives every position exactly the window it had during the rollout
(the last `mem_len` positions before its step, plus its own step causally), so the replay reproduces the memory's
outputs; the largest difference is reported. Attention is shown per head for an early, a middle and the last
layer, with steps on both axes: row t is what the LM output of step t (its step's last position) attends to, summed
over each step's k positions, so rows sum to 1 (less the share paid to the episode's instruction, when the memory
holds one; that share is reported per head). Key events, read from MiniGrid's symbolic view, are marked: the
first sight of each key, ball, box, door and goal (e.g. the cue object of the Memory tasks) and the last step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shelm.errors import ShelmError
from shelm.inspect.figures import Analysis, save_figure
from shelm.inspect.trace import Step

EVENT_OBJECTS = ("door", "key", "ball", "box", "goal")


def per_step(attention: torch.Tensor, k: int) -> torch.Tensor:
    """[heads, T*k, T*k] -> [heads, T, T]: the query of each step's last position, keys summed per step."""
    heads, positions, _ = attention.shape
    last = attention[:, k - 1 :: k]  # [heads, T, T*k]
    return last.reshape(heads, positions // k, positions // k, k).sum(-1)


def key_events(steps: list[Step]) -> list[tuple[int, str]]:
    """(step, label): the first sight of each (colour, object) of EVENT_OBJECTS in the symbolic view."""
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    events, seen = [], set()
    for step in steps:
        if step.symbolic is None:
            return []
        for obj, colour, _ in step.symbolic.reshape(-1, 3).tolist():
            name = IDX_TO_OBJECT.get(obj)
            if name in EVENT_OBJECTS and (colour, obj) not in seen:
                seen.add((colour, obj))
                events.append((step.t, f"first sight of {IDX_TO_COLOR[colour]} {name}"))
    return events


def chosen_layers(n_layers: int) -> list[int]:
    """An early, a middle and the last layer (fewer when the model has fewer)."""
    return sorted({0, n_layers // 2, n_layers - 1})


def attention_to_events(maps: torch.Tensor, events: list[tuple[int, str]], window_steps: int) -> dict[str, list[float]]:
    """Per event, per head: the mean attention that later steps still holding the event in their window pay to
    the event's step, as a multiple of the uniform share 1 / (steps visible); 1 means no preference."""
    steps = maps.shape[1]
    out = {}
    for t, label in events:
        later = torch.arange(t + 1, min(steps, t + window_steps + 1))
        if len(later) == 0:
            continue
        visible = later.clamp(max=window_steps).float() + 1  # step q sees min(q, window) earlier steps and itself
        out[label] = (maps[:, later, t] * visible).mean(-1).tolist()
    return out


def run(analysis: Analysis) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    memory = analysis.policy.language_model
    if memory is None:
        raise ShelmError(f"--what attention needs a language-model memory; {analysis.run_dir} has none")
    trace = analysis.rollout()
    episode = max(trace.episodes, key=lambda e: len(e.steps))  # the longest: the most memory to look at
    steps = episode.steps
    inputs = torch.as_tensor(np.stack([s.lm_inputs for s in steps]))
    attentions, outputs, prefix = memory.attention(inputs, episode.instruction)
    recorded = torch.as_tensor(np.stack([s.memory_out for s in steps]))
    replay_error = float((outputs - recorded).abs().max())
    events = key_events(steps)
    last = (steps[-1].t, f"last step (return {episode.episode_return:.2f})")
    layers = chosen_layers(len(attentions))
    k = memory.positions_per_step
    # The instruction's positions come first: the maps are over the steps, its share is reported apart.
    maps = {layer: per_step(attentions[layer][:, prefix:, prefix:], k) for layer in layers}
    to_instruction = {layer: attentions[layer][:, prefix + k - 1 :: k, :prefix].sum(-1) for layer in layers}
    heads = maps[layers[0]].shape[0]

    fig, axes = plt.subplots(len(layers), heads, figsize=(2.0 * heads, 2.1 * len(layers)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for r, layer in enumerate(layers):
        for head, ax in enumerate(axes[r]):
            ax.imshow(maps[layer][head].numpy() ** 0.5, cmap="magma", vmin=0, vmax=1)  # sqrt: weak links visible
            for i, (t, label) in enumerate([*events, last]):
                ax.axvline(t, color=colours(i % 10), lw=0.8, ls="--", label=None if r or head else label)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"layer {layer}, head {head}", fontsize=7)
    axes[0][0].set_ylabel("step (query)", fontsize=7)
    fig.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle(
        f"{trace.agent} on {trace.env_id}: attention over the longest of {len(trace.episodes)} episodes "
        f"({len(steps)} steps; columns: the steps attended; square-root scale)",
        fontsize=9,
    )
    figure = save_figure(fig, analysis.figure_path("attention"))
    return {
        "episode": trace.episodes.index(episode) + 1,
        "steps": len(steps),
        "positions_per_step": k,
        "window_positions": memory.window_positions,
        "instruction": episode.instruction,
        "replay_max_abs_diff": replay_error,
        "events": [{"t": t, "event": label} for t, label in events],
        "layers": {
            str(layer): {
                "attention_to_events": attention_to_events(maps[layer], events, memory.window_steps),
                # Per head, the attention every step pays to the instruction (0 without one), averaged over steps.
                "attention_to_instruction": to_instruction[layer].mean(-1).tolist(),
                "maps": maps[layer].round(decimals=4).tolist(),
            }
            for layer in layers
        },
        "figures": [str(figure)],
    }
