"""Which words do observations become? (HELM: the token FrozenHopfield's softmax picks as beta -> infinity, i.e.
the most similar token; HELMv2: the token nearest to its input vector; SHELM: the top-k retrieved words.)

A strip of an episode's observations with their words, and for the most frequent words the observations that
share them: a memory that gives different situations the same word cannot tell them apart later.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from typing import Any

from shelm.inspect.figures import Analysis, save_figure
from shelm.inspect.trace import Step, Trace, distinct_steps

STRIP_STEPS = 32
GROUP_ROWS, GROUP_COLUMNS = 8, 8


def word_groups(steps: list[Step]) -> dict[str, list[int]]:
    """word -> indices into `steps` of the observations that retrieved it, most shared word first."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, step in enumerate(steps):
        for word in dict.fromkeys(w for w, _ in step.words):  # a word twice in one top-k counts once
            groups[word].append(i)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def word_sets(steps: list[Step]) -> set[tuple[str, ...]]:
    return {tuple(w for w, _ in step.words) for step in steps}


def _caption(step: Step) -> str:
    return "\n".join(textwrap.wrap(" / ".join(w for w, _ in step.words) or "-", 16)[:3])


def _strip(trace: Trace, path: Any) -> Any:
    import matplotlib.pyplot as plt

    steps = trace.episodes[0].steps[:STRIP_STEPS]
    columns = min(8, len(steps))
    rows = -(-len(steps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, step in zip(axes.flat, steps, strict=False):
        ax.imshow(step.obs)
        ax.set_title(f"t={step.t}\n{_caption(step)}", fontsize=7)
    fig.suptitle(f"{trace.agent} on {trace.env_id}: episode 1, words by {trace.retriever}", fontsize=9)
    return save_figure(fig, path)


def _groups(trace: Trace, steps: list[Step], groups: dict[str, list[int]], path: Any) -> Any:
    import matplotlib.pyplot as plt

    shown = list(groups.items())[:GROUP_ROWS]
    fig, axes = plt.subplots(len(shown), GROUP_COLUMNS, figsize=(1.4 * GROUP_COLUMNS, 1.6 * len(shown)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (word, members) in zip(axes, shown, strict=True):
        row[0].set_title(f"'{word}': {len(members)} obs.", fontsize=8, loc="left")
        for ax, index in zip(row, members, strict=False):
            ax.imshow(steps[index].obs)
    fig.suptitle(f"{trace.agent} on {trace.env_id}: distinct observations sharing a word", fontsize=9)
    return save_figure(fig, path)


def run(analysis: Analysis) -> dict[str, Any]:
    trace = analysis.rollout()
    indexed = distinct_steps(trace)
    steps = [step for _, step in indexed]
    groups = word_groups(steps)
    figures = [
        _strip(trace, analysis.figure_path("tokens-strip")),
        _groups(trace, steps, groups, analysis.figure_path("tokens-groups")),
    ]
    return {
        "words_by": trace.retriever,
        "steps": sum(len(e.steps) for e in trace.episodes),
        "distinct_observations": len(steps),
        "distinct_word_sets": len(word_sets(steps)),
        "distinct_words": len(groups),
        "groups": {
            word: [f"episode {indexed[i][0] + 1} t={steps[i].t}" for i in members] for word, members in groups.items()
        },
        "observations": [{"episode": episode + 1, "t": step.t, "words": step.words} for episode, step in indexed],
        "episodes": [[[w for w, _ in s.words] for s in e.steps] for e in trace.episodes],
        "figures": [str(f) for f in figures],
    }
