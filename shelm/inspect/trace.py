"""The readable memory: roll out a trained agent and record, per step, what went into its memory.

For SHELM the record is the retrieved words with their scores; for HELM and HELMv2 the vocabulary token
nearest to the LM input vector (FrozenHopfield's most weighted token, or the nearest embedding); for agents
without a language-model memory it is empty. Each step also keeps the frame, the action, reward and value
estimate, and the window: the words of the steps still inside the LM's memory (its last `window_steps` steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shelm.config import TrainConfig
from shelm.envs import make_vec_env
from shelm.envs.minigrid import SYMBOLIC_VIEW
from shelm.evaluate import EVAL_SEED_OFFSET, load_policy
from shelm.ppo import Policy
from shelm.rollout import episode_success

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


@dataclass
class Episode:
    steps: list[Step] = field(default_factory=list)
    episode_return: float = 0.0
    success: bool = False

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


def action_names(env: Any, n: int) -> list[str]:
    """MiniGrid names its actions (left, right, forward, ...); other envs get their indices."""
    actions = getattr(env.unwrapped, "actions", None)
    try:
        return [actions(i).name for i in range(n)]  # type: ignore[misc]
    except (TypeError, ValueError):
        return [str(i) for i in range(n)]


def describe_words(agent: str, retriever: str | None) -> str | None:
    if agent == "shelm":
        return retriever
    return {"helm": "nearest token (FrozenHopfield)", "helmv2": "nearest token (affine image features)"}.get(agent)


def record(
    run_dir: Path, episodes: int = 1, checkpoint: str = "latest", seed: int | None = None, sampled: bool = False
) -> Trace:
    """Play `episodes` episodes of the run's `checkpoint` one after another in one env, greedy (arg-max) or with
    sampled actions, and record every step."""
    config, policy, state = load_policy(run_dir, checkpoint)
    return record_policy(run_dir, config, policy, int(state["global_step"]), episodes, seed, sampled)


def record_policy(
    run_dir: Path,
    config: TrainConfig,
    policy: Policy,
    global_step: int,
    episodes: int = 1,
    seed: int | None = None,
    sampled: bool = False,
) -> Trace:
    """`record` for a policy already loaded (the analyses reuse its memory after the rollout)."""
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    envs = make_vec_env(config.env_id, 1, "sync", config.minigrid_tile_size, render_mode="rgb_array")
    names = action_names(envs.envs[0], int(envs.single_action_space.n))
    memory, device = policy.memory, policy.device
    recorded: list[Episode] = []
    try:
        obs, infos = envs.reset(seed=seed)
        if memory is not None:
            memory.reset(1)
        agent_state = policy.agent.initial_state(1).to(device)
        episode_start = torch.ones(1, dtype=torch.bool, device=device)
        current = Episode()
        sampler = torch.Generator(device=device).manual_seed(seed)
        while len(recorded) < episodes:
            frame = envs.envs[0].render()
            obs_t = torch.as_tensor(obs, device=device)
            with torch.no_grad():
                memory_out = policy.read_memory(obs_t, episode_start, infos)
                logits, value, agent_state = policy.act(obs_t, memory_out, agent_state, episode_start)
            symbolic = infos.get(SYMBOLIC_VIEW)
            lm_inputs = None
            if memory is not None:
                with torch.no_grad():
                    lm_inputs = memory.lm_inputs(obs_t, infos)[0].float().cpu().numpy()  # as fed: deterministic
            words = memory.last_words()[0] if memory is not None else []
            if sampled:
                action = int(torch.multinomial(logits.softmax(-1), 1, generator=sampler))
            else:
                action = int(logits.argmax(-1))
            obs, reward, terminated, truncated, infos = envs.step(np.array([action]))
            current.steps.append(
                Step(
                    t=len(current.steps),
                    frame=frame if isinstance(frame, np.ndarray) else obs_t[0].cpu().numpy(),
                    words=[(w, round(s, 4)) for w, s in words],
                    action=names[action],
                    reward=float(reward[0]),
                    value=float(value[0]),
                    obs=obs_t[0].cpu().numpy(),
                    symbolic=None if symbolic is None else np.asarray(symbolic[0]),
                    lm_inputs=lm_inputs,
                    memory_out=memory_out[0].float().cpu().numpy() if memory is not None else None,
                )
            )
            current.episode_return += float(reward[0])
            done = bool(terminated[0] or truncated[0])
            if done:
                current.success = episode_success(infos, 0, current.episode_return)
                recorded.append(current)
                current = Episode()
            episode_start = torch.as_tensor([done], device=device)
    finally:
        envs.close()
    return Trace(
        run_dir=str(run_dir),
        env_id=config.env_id,
        agent=config.agent,
        retriever=describe_words(config.agent, config.retriever),
        window_steps=memory.window_steps if memory is not None else 0,
        global_step=global_step,
        mode="sampled" if sampled else "greedy",
        episodes=recorded,
    )


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
