"""The readable memory: roll out a trained agent and record, per step, what went into its memory.

For SHELM the record is the retrieved words with their scores (and, where its retriever locates them, the region of
the observation each word came from); for HELM and HELMv2 the vocabulary token nearest to the LM input vector
(FrozenHopfield's most weighted token, or the nearest embedding); for agents without a language-model memory it is
empty. Each step also keeps the frame, the action, reward and value estimate, and the window: the words of the
steps still inside the LM's memory (its last `window_steps` steps). An episode keeps the instruction its memory held
from the start, where the run reads one (`instruction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shelm.acting import EnvLoop, EpisodeTracker
from shelm.agents import get_agent_spec
from shelm.agents.policy import Actor, Policy
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, env_action_indices, make_vec_env, success_rule
from shelm.evaluate import EVAL_SEED_OFFSET, reached_cap
from shelm.info_keys import SYMBOLIC_VIEW
from shelm.memory.retrieval import FrameRegion
from shelm.ppo import load_policy
from shelm.precision import autocast
from shelm.progress import PlayProgress

Words = list[tuple[str, float]]


@dataclass
class Step:
    t: int
    frame: np.ndarray
    """What a person sees: the env's full render where it has one, else the observation."""
    words: Words
    action: str
    reward: float
    value: float
    obs: np.ndarray
    """The observation the agent acted on, uint8 [H, W, C]."""
    symbolic: np.ndarray | None = None
    """MiniGrid's symbolic view of that observation [view, view, 3] (object, colour, state), where the env has one."""
    lm_inputs: np.ndarray | None = None
    """The k vectors the memory fed its language model at this step, [k, d] float32 (agents with an LM memory)."""
    memory_out: np.ndarray | None = None
    """The memory's output at this step, [M] float32: what the agent received from its LM."""
    word_regions: list[FrameRegion | None] | None = None
    """Per word, the region of `obs` it came from (None: no region offered it), where the memory's retriever
    locates its words (SHELM with retriever=regions); None for every other agent."""
    attention: np.ndarray | None = None
    """Agents that attend over their own past (trxl): the step's attention weights [layers, heads, window + 1] over
    its window's slots, oldest first (the step `window - j` steps back in slot j), then itself; None for the others."""


@dataclass
class Episode:
    steps: list[Step] = field(default_factory=list)
    episode_return: float = 0.0
    success: bool = False
    instruction: str | None = None
    """The text the LM memory held before the episode's first step (the `instruction` setting), if it read one."""
    capped: bool = False
    """The episode reached the step cap (`Trace.max_episode_steps`) and ended there as truncated."""

    def window(self, t: int, window_steps: int) -> list[tuple[int, Words]]:
        """(step, words) of the steps inside the LM memory right after step t, oldest first."""
        return [(s.t, s.words) for s in self.steps[max(0, t + 1 - window_steps) : t + 1]]


@dataclass
class Trace:
    run_dir: str
    env_id: str
    agent: str
    retriever: str | None
    """Which retriever produced the words (SHELM), or what the words are (HELM/HELMv2); None without memory."""
    window_steps: int
    global_step: int
    mode: str
    """'greedy' or 'sampled' actions."""
    episodes: list[Episode]
    max_episode_steps: int | None = None
    """The step cap each episode was played under (None: the env's own limit)."""


def action_names(env: Any, n: int) -> list[str]:
    """MiniGrid names its actions (left, right, forward, ...); other envs get their indices. An agent given some of
    the env's actions (`env_actions`) sees each under the env's name for it."""
    actions = getattr(env.unwrapped, "actions", None)
    try:
        return [actions(i).name for i in env_action_indices(env, n)]  # type: ignore[misc]
    except (TypeError, ValueError):
        return [str(i) for i in range(n)]


def record(
    run_dir: Path,
    episodes: int = 1,
    checkpoint: str = "latest",
    seed: int | None = None,
    sampled: bool = False,
    max_episode_steps: int | None = None,
    progress: PlayProgress | None = None,
) -> Trace:
    """Play `episodes` episodes of the run's `checkpoint` one after another in one env, greedy (arg-max) or with
    sampled actions, and record every step; an episode that reaches `max_episode_steps` ends there as truncated."""
    config, policy, state = load_policy(run_dir, checkpoint)
    return record_policy(
        run_dir, config, policy, int(state["global_step"]), episodes, seed, sampled, max_episode_steps, progress
    )


def record_policy(
    run_dir: Path,
    config: TrainConfig,
    policy: Policy,
    global_step: int,
    episodes: int = 1,
    seed: int | None = None,
    sampled: bool = False,
    max_episode_steps: int | None = None,
    progress: PlayProgress | None = None,
) -> Trace:
    """`record` for a policy already loaded (the analyses reuse its memory after the rollout); `progress` is told
    every step."""
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    envs = make_vec_env(EnvSettings.from_config(config, max_episode_steps), 1, render_mode="rgb_array")
    names = action_names(envs.envs[0], int(envs.single_action_space.n))
    language_model, readable = policy.language_model, policy.readable
    sampler = torch.Generator(device=policy.device).manual_seed(seed)
    actor = Actor(policy, 1, sampler, greedy=not sampled)
    loop = EnvLoop(envs, actor, EpisodeTracker(1, None, success_rule(config.env_id)))
    recorded: list[Episode] = []
    current = Episode()
    try:
        loop.reset(seed)
        while len(recorded) < episodes:
            frame = envs.envs[0].render()
            symbolic = actor.infos.get(SYMBOLIC_VIEW)
            lm_inputs, regions = None, None
            words = readable.last_words()[0] if readable is not None else []
            if language_model is not None:
                if language_model.last_inputs is not None:  # as fed to the LM for this observation
                    lm_inputs = language_model.last_inputs[0].float().cpu().numpy()
                located = language_model.last_word_regions(actor.obs)
                regions = None if located is None else located[0]
                if not current.steps:  # the memory took the instruction in when it observed this start
                    current.instruction = language_model.instructions[0]
            with torch.no_grad(), autocast(policy.device, policy.precision):  # as the step about to be taken sees it
                attention = policy.agent.window_attention(actor.obs, actor.memory_out, actor.state, actor.episode_start)
            step = loop.step()
            obs = step.obs[0].cpu().numpy()
            current.steps.append(
                Step(
                    t=len(current.steps),
                    frame=frame if isinstance(frame, np.ndarray) else newest_frame(obs, config.obs_frame_stack),
                    words=[(w, round(s, 4)) for w, s in words],
                    action=names[int(step.decision.action[0])],
                    reward=float(step.reward[0]),
                    value=float(step.decision.value[0]),
                    obs=obs,
                    symbolic=None if symbolic is None else np.asarray(symbolic[0]),
                    lm_inputs=lm_inputs,
                    memory_out=step.memory_out[0].float().cpu().numpy() if policy.memory is not None else None,
                    word_regions=regions,
                    attention=None if attention is None else attention[0].float().cpu().numpy(),
                )
            )
            current.episode_return += float(step.reward[0])
            capped = 0
            for finished in step.finished:
                current.success = finished.success
                current.capped = reached_cap(finished.length, max_episode_steps)
                capped += current.capped
                recorded.append(current)
                current = Episode()
            if progress is not None:
                progress.update(1, len(step.finished), capped)
    finally:
        envs.close()
    words_are = get_agent_spec(config.agent).words
    return Trace(
        run_dir=str(run_dir),
        env_id=config.env_id,
        agent=config.agent,
        retriever=None if words_are is None else words_are(config),
        window_steps=policy.memory.window_steps if policy.memory is not None else 0,
        global_step=global_step,
        mode="sampled" if sampled else "greedy",
        episodes=recorded,
        max_episode_steps=max_episode_steps,
    )


def newest_frame(obs: np.ndarray, frame_stack: int) -> np.ndarray:
    """The newest frame of an observation [H, W, C] as an RGB image a person can look at: the last C / frame_stack
    channels of a stack (`obs_frame_stack`), a grey frame repeated into RGB."""
    frame = obs[..., -(obs.shape[-1] // frame_stack) :]
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame


def distinct_steps(trace: Trace, limit: int | None = None) -> list[tuple[int, Step]]:
    """(episode index, step) of the steps whose observation was not seen before, in order of first appearance."""
    seen: set[bytes] = set()
    steps = []
    for index, episode in enumerate(trace.episodes):
        for step in episode.steps:
            key = step.obs.tobytes()
            if key not in seen and (limit is None or len(steps) < limit):
                seen.add(key)
                steps.append((index, step))
    return steps
