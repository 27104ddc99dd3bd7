"""Retrieval quality: how much of what a frame shows a SHELM retriever's words carry, before any training.

A SHELM agent remembers only the k words its retriever gives each frame, so whatever the words do not tell apart,
no memory can recall. This measure asks that question of the words alone, on a MiniGrid/BabyAI task, whose
symbolic state says what each frame shows. The environment's state is used only to SCORE the words, never to
make them (except by the `symbolic` retriever, which is an oracle that reads that state; it is the ceiling).

A uniformly random policy (its own seeded generator) plays `episodes` episodes of one environment; every frame
the agent acts on goes, in the order it was played, to each retriever, one call per frame, exactly as SHELM's
memory calls it (stateless retrievers memoized per input, stateful ones such as `regions` called on every frame,
so their words depend on the frames before). A frame's words are its k word ids, best first (a "word tuple").

Two things are decoded from the word tuples, each with a majority-vote lookup table (word tuple -> the label most
frames with that tuple had) fit on the even-numbered episodes and scored on the odd ones; a tuple the fit never
saw decodes as the fit's most common label, which alone gives the chance level (ties between labels go to the
first in alphabetical order, so everything is deterministic):

- the object: the most salient object in view, by the symbolic view, is the nearest object that is not a wall,
  floor or empty cell (a door, key, ball, box, goal or lava) by Manhattan distance from the agent, its type, its
  colour and both; "nothing" when there is none. The agent's own cell (distance 0) shows what the agent carries.
  Where several objects are equally near, each is a right answer and the frame splits its vote among them when
  the table is fit: which of two equally near objects a retriever ranks first is arbitrary (`torch.topk` breaks
  a tie of scores in no fixed order), so no single tie-break could be held against it;
- the cue, on MiniGrid's Memory tasks: at the frames where the cue's cell is in view and shows the cue, whether
  the words tell a key cue from a ball cue. This is what the Memory task asks the memory to carry.

The table is fit and scored on frames of the same task and policy, so an accuracy says what the words can carry
to a memory, not what an agent will learn to read from them; a tuple the fit never saw counts as the majority
label, so words that vary a lot between frames showing the same thing score low. Seconds per frame are the
wall-clock time of the retriever's calls (one frame per call, its memo included) on the machine that ran it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from shelm.agents import resolve_config
from shelm.config import TrainConfig, parse_overrides
from shelm.envs import EnvSettings, make_env
from shelm.envs.minigrid import MEMORY_CUE, SYMBOLIC_VIEW, cue_cell, handles, sees_cue
from shelm.errors import ShelmError
from shelm.memory.caches import MemoCache, cached_tokenizer
from shelm.memory.retrieval import LocatingRetriever, Retriever, StatefulRetriever, top_k
from shelm.memory.retrievers import RETRIEVERS, build_retriever, retriever_inputs
from shelm.precision import autocast, pick_device

FRAMES = 2500
"""Without --episodes, episodes are played until this many frames have been (at least 2 episodes)."""
NOTHING = "nothing"
OBJECT_TARGETS = ("type", "colour", "both")

# MiniGrid's encoding (minigrid.core.constants).
OBJECT_NAMES = {4: "door", 5: "key", 6: "ball", 7: "box", 8: "goal", 9: "lava"}
"""The objects a label can name: every MiniGrid object but unseen, empty, wall, floor and the agent."""
COLOUR_NAMES = ("red", "green", "blue", "purple", "yellow", "grey")


@dataclass(frozen=True)
class Frame:
    """One frame a retriever is given, and what the environment's state says it shows."""

    episode: int
    inputs: dict[str | None, np.ndarray]
    """Per retriever input key (None: the image), what a retriever reading it is given."""
    nearest: frozenset[tuple[str, str]]
    """(type, colour) of every object at the nearest distance from the agent, or {(nothing, nothing)}."""
    cue: str | None
    """On a Memory task, the cue's name ('key', 'ball') where the frame shows it; None elsewhere."""


@dataclass(frozen=True)
class Decoded:
    """A majority-vote decoder's score: accuracy on the scored frames, that of always saying the fit's most common
    label (chance), and the share of scored frames whose key the fit never saw (they get that label too); None
    where there was nothing to fit or to score."""

    accuracy: float | None
    chance: float | None
    fit: int
    scored: int
    unseen: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "chance": self.chance,
            "frames_fit": self.fit,
            "frames_scored": self.scored,
            "unseen_in_fit": self.unseen,
        }


class MajorityTable:
    """key -> the label with the most votes among the examples fit with it; a key never seen -> the label with the
    most votes overall. Each example gives the labels right for it (usually one; several where any of them is
    right) and splits its one vote evenly among them. Ties between labels go to the first in sorted order, so a
    fit is deterministic."""

    def __init__(self, keys: Sequence[Hashable], labels: Sequence[Collection[str]]):
        if not keys or len(keys) != len(labels):
            raise ValueError(f"fit on {len(keys)} keys and {len(labels)} labels; give as many of each, at least one")
        per_key: dict[Hashable, dict[str, Fraction]] = {}
        overall: dict[str, Fraction] = {}
        for key, right in zip(keys, labels, strict=True):
            if not right:
                raise ValueError(f"an example of key {key!r} has no right label")
            votes = per_key.setdefault(key, {})
            for label in right:
                votes[label] = votes.get(label, Fraction(0)) + Fraction(1, len(right))
                overall[label] = overall.get(label, Fraction(0)) + Fraction(1, len(right))
        self.table = {key: _majority(votes) for key, votes in per_key.items()}
        self.fallback = _majority(overall)

    def __call__(self, key: Hashable) -> str:
        return self.table.get(key, self.fallback)


def _majority(votes: Mapping[str, Fraction]) -> str:
    return min(votes.items(), key=lambda item: (-item[1], item[0]))[0]


def decode(keys: Sequence[Hashable], accepted: Sequence[Collection[str]], fit: Sequence[bool]) -> Decoded:
    """Fit a `MajorityTable` on the frames where `fit` is true, score it on the others: a decoded label is right
    when it is among the frame's `accepted` labels."""
    train = [i for i, f in enumerate(fit) if f]
    test = [i for i, f in enumerate(fit) if not f]
    if not train or not test:
        return Decoded(None, None, len(train), len(test))
    table = MajorityTable([keys[i] for i in train], [accepted[i] for i in train])
    right = sum(table(keys[i]) in accepted[i] for i in test)
    chance = sum(table.fallback in accepted[i] for i in test)
    unseen = sum(keys[i] not in table.table for i in test)
    return Decoded(right / len(test), chance / len(test), len(train), len(test), unseen / len(test))


def salient_objects(view: np.ndarray) -> frozenset[tuple[str, str]]:
    """A symbolic view [V, V, 3] (indexed [x, y], the agent at (V // 2, V - 1)) -> (type, colour) of every object
    at the nearest distance from the agent, or {(nothing, nothing)} (see the module docstring)."""
    size = view.shape[0]
    found: dict[int, set[tuple[str, str]]] = {}
    for x, y in zip(*np.nonzero(np.isin(view[..., 0], list(OBJECT_NAMES))), strict=True):
        distance = abs(int(x) - size // 2) + abs(int(y) - (size - 1))
        found.setdefault(distance, set()).add((OBJECT_NAMES[int(view[x, y, 0])], COLOUR_NAMES[int(view[x, y, 1])]))
    return frozenset(found[min(found)]) if found else frozenset({(NOTHING, NOTHING)})


def object_labels(frames: Sequence[Frame], target: str) -> list[frozenset[str]]:
    """Per frame, the labels for `target` (type, colour or both) that count as right: the nearest objects'."""

    def name(pair: tuple[str, str]) -> str:
        if pair[0] == NOTHING:
            return NOTHING
        return {"type": pair[0], "colour": pair[1], "both": f"{pair[1]} {pair[0]}"}[target]

    return [frozenset(name(p) for p in f.nearest) for f in frames]


@dataclass(frozen=True)
class Setup:
    """What the measure plays and with what, every input checked before anything is played."""

    env_id: str
    episodes: int | None
    seed: int
    configs: dict[str, TrainConfig]
    """Per retriever name, the SHELM config it is built from ('auto' settings resolved as in training)."""
    info: dict[str, Any]
    """The info of the env's first reset: what it gives besides frames."""
    frame_shape: tuple[int, ...]
    """The env's frames, [H, W, C]."""


def check(
    env_id: str, retrievers: Sequence[str], episodes: int | None, seed: int | None, settings: Sequence[str]
) -> Setup:
    """The measure's inputs, or a one-line ShelmError naming the bad value and the fix."""
    if episodes is not None and episodes < 2:
        raise ShelmError(
            f"--episodes {episodes}: play at least 2 (the decoders are fit on the even episodes, scored on the odd)"
        )
    if not handles(env_id):
        raise ShelmError(
            f"--env {env_id}: the words are scored with MiniGrid/BabyAI's symbolic state, which this env does not "
            "have; give a MiniGrid-* or BabyAI-* id (`shelm envs`)"
        )
    names = list(dict.fromkeys(name.strip() for name in retrievers))
    if not names or "" in names:
        raise ShelmError(f"--retrievers {','.join(retrievers)}: give comma-separated names, e.g. symbolic,regions")
    for name in names:
        if name not in RETRIEVERS:
            raise ShelmError(f"--retrievers: unknown retriever '{name}'; expected some of {', '.join(RETRIEVERS)}")
    overrides = parse_overrides(list(settings))
    if "retriever" in overrides:
        raise ShelmError(f"--set retriever={overrides['retriever']}: name the retrievers with --retrievers instead")
    if seed is not None:
        overrides["seed"] = seed
    configs = {name: resolve_config(env_id, "shelm", {**overrides, "retriever": name})[0] for name in names}
    first = next(iter(configs.values()))
    env = make_env(EnvSettings.from_config(first))  # an unknown id is refused here
    try:
        info = dict(env.reset(seed=first.seed)[1])
        shape = tuple(env.observation_space.shape)
    finally:
        env.close()
    return Setup(env_id, episodes, first.seed, configs, info, shape)


def build(config: TrainConfig, setup: Setup) -> Retriever:
    """The retriever of `config`, refused in one line where it cannot serve the env of `setup`.
    No language model is loaded: the measure reads the words, not their LM vectors (the LM's weight hash, which
    only keys CLIP's word-embedding cache, is left empty)."""
    device = pick_device(config.device)
    retriever = build_retriever(config, cached_tokenizer(config.lm), "", device)
    key = retriever.input_key
    if key is not None and key not in setup.info:
        raise ShelmError(f"retriever={retriever.name} needs info['{key}'] from env '{config.env_id}'; it has none")
    if config.topk > len(retriever.vocabulary):
        raise ShelmError(
            f"topk={config.topk} exceeds the {len(retriever.vocabulary)} words of retriever={retriever.name}; "
            f"choose 1..{len(retriever.vocabulary)}"
        )
    if isinstance(retriever, LocatingRetriever):
        try:
            retriever.region_boxes(*setup.frame_shape[:2])
        except ShelmError as exc:
            raise ShelmError(
                f"retriever={retriever.name} on env '{config.env_id}': {exc}; choose fewer regions (--set region_grid)"
            ) from None
    return retriever


def play(setup: Setup, input_keys: Collection[str | None]) -> list[Frame]:
    """The frames a uniformly random policy acts on, in play order (episode e is reset with seed + e)."""
    env = make_env(EnvSettings.from_config(next(iter(setup.configs.values()))))
    world = env.unwrapped
    rng = np.random.default_rng(setup.seed)
    frames: list[Frame] = []
    try:
        episode = 0
        while (episode < setup.episodes) if setup.episodes is not None else (len(frames) < FRAMES or episode < 2):
            obs, info = env.reset(seed=setup.seed + episode)
            done = False
            while not done:
                frames.append(_frame(episode, obs, info, world, input_keys))
                obs, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
                done = bool(terminated or truncated)
            episode += 1
    finally:
        env.close()
    return frames


def _frame(episode: int, obs: np.ndarray, info: Mapping[str, Any], world: Any, keys: Collection[str | None]) -> Frame:
    view = np.asarray(info[SYMBOLIC_VIEW])
    nearest = salient_objects(view)
    cue = None
    if MEMORY_CUE in info and sees_cue(world):
        x, y = world.get_view_coords(*cue_cell(world))
        shown = int(view[x, y, 0])
        if shown == int(info[MEMORY_CUE]):
            cue = OBJECT_NAMES[shown]
    inputs = {key: np.array(obs if key is None else info[key]) for key in keys}
    return Frame(episode, inputs, nearest, cue)


def word_tuples(
    retriever: Retriever, config: TrainConfig, frames: Sequence[Frame]
) -> tuple[list[tuple[int, ...]], float]:
    """Each frame's k word ids, best first, fed one frame per call in play order as SHELM's memory feeds them;
    and the seconds that took per frame."""
    device = pick_device(config.device)
    memo = None if isinstance(retriever, StatefulRetriever) else MemoCache(config.memo_size)

    def compute(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(device, config.lm_dtype):  # the retriever runs in the LM's precision, as in SHELM's memory
            return top_k(retriever.scores(x).float(), config.topk, retriever.pad_item)

    out = []
    start = time.perf_counter()
    for frame in frames:
        inputs = torch.as_tensor(frame.inputs[retriever.input_key])[None].to(device)
        ids, _ = compute(inputs) if memo is None else memo(inputs, compute)
        out.append(tuple(int(i) for i in ids[0].tolist()))
    return out, (time.perf_counter() - start) / max(len(frames), 1)


def measure(setup: Setup) -> dict[str, Any]:
    """Play the frames and score every retriever's words on them (see the module docstring); the JSON report."""
    info = setup.info
    retrievers = {name: build(cfg, setup) for name, cfg in setup.configs.items()}  # all refused before any play
    frames = play(setup, {r.input_key for r in retrievers.values()})
    fit = [f.episode % 2 == 0 for f in frames]
    cue_frames = [i for i, f in enumerate(frames) if f.cue is not None]
    has_cue = MEMORY_CUE in info
    report: dict[str, Any] = {
        "env_id": setup.env_id,
        "seed": setup.seed,
        "policy": "uniformly random actions",
        "episodes": frames[-1].episode + 1,
        "frames": len(frames),
        "frames_fit": sum(fit),
        "frames_scored": len(frames) - sum(fit),
        "decoder": "majority vote per word tuple, fit on the even episodes, scored on the odd ones",
        "object_ties": sum(len(f.nearest) > 1 for f in frames) / len(frames),
        "cue_frames": len(cue_frames) if has_cue else None,
        "retrievers": [],
    }
    for name, retriever in retrievers.items():
        cfg = setup.configs[name]
        words, seconds = word_tuples(retriever, cfg, frames)
        row: dict[str, Any] = {
            "retriever": name,
            "inputs": retriever_inputs(name),
            "topk": cfg.topk,
            "identity": retriever.identity(),
            "seconds_per_frame": seconds,
            "distinct_word_tuples": len(set(words)),
            "object": {},
            "cue": None,
        }
        for target in OBJECT_TARGETS:
            row["object"][target] = decode(words, object_labels(frames, target), fit).as_dict()
        if has_cue:
            cue_words = [words[i] for i in cue_frames]
            cues = [str(frames[i].cue) for i in cue_frames]
            row["cue"] = decode(cue_words, [{c} for c in cues], [fit[i] for i in cue_frames]).as_dict()
            row["cue_words"] = {
                cue: _phrase(retriever, Counter(w for w, c in zip(cue_words, cues, strict=True) if c == cue))
                for cue in sorted(set(cues))
            }
        report["retrievers"].append(row)
    return report


def _phrase(retriever: Retriever, counts: Counter[tuple[int, ...]]) -> dict[str, Any]:
    """The most common word tuple among some frames, in words, and the share of those frames it names."""
    words, count = counts.most_common(1)[0]
    return {"words": [retriever.vocabulary[i] for i in words], "share": count / sum(counts.values())}


def _cell(result: Mapping[str, Any] | None) -> str:
    if result is None or result["accuracy"] is None:
        return "—"
    return f"{result['accuracy']:.3f} ({result['chance']:.3f})"


def table(report: Mapping[str, Any]) -> str:
    """The report as a markdown table, one row per retriever: accuracy (chance) of each decoded label."""
    head = ["retriever", "inputs", "k", "object type", "object colour", "object type+colour"]
    cue = report["cue_frames"] is not None
    if cue:
        head += ["cue (key/ball)", "cue frames"]
    head += ["word tuples", "s/frame"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|"]
    for row in report["retrievers"]:
        cells = [row["retriever"], row["inputs"], str(row["topk"])]
        cells += [_cell(row["object"][target]) for target in OBJECT_TARGETS]
        if cue:
            cells += [_cell(row["cue"]), str(report["cue_frames"])]
        cells += [str(row["distinct_word_tuples"]), f"{row['seconds_per_frame']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(report: Mapping[str, Any]) -> str:
    """One line above the table: what was played and how it was scored."""
    return (
        f"{report['env_id']}: {report['episodes']} episodes of {report['policy']} (seed {report['seed']}), "
        f"{report['frames']} frames; decoded by {report['decoder']} ({report['frames_scored']} frames scored); "
        "cells: accuracy (chance)"
    )
