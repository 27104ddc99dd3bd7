"""The one environment loop: episodes scored by the suite's rule, one memory read per observation, and the same
actor behind training, evaluation and inspection."""

from __future__ import annotations

import numpy as np
import torch

from shelm.acting import EnvLoop, EpisodeTracker
from shelm.agents.policy import Actor, build_policy, sample_actions
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, make_vec_env, probe_env, success_rule
from shelm.envs.registry import flag_or_positive_return


def test_episode_tracker_uses_is_success_when_the_env_reports_it():
    tracker = EpisodeTracker(n_envs=2, window=10, success=flag_or_positive_return)
    assert tracker.update(np.array([-0.5, 1.0]), np.array([False, False]), {}) == []
    infos = {"final_info": {"is_success": np.array([True, False]), "_is_success": np.array([True, True])}}
    finished = tracker.update(np.array([-0.2, 0.5]), np.array([True, True]), infos)
    assert [(e.env, e.length, e.success) for e in finished] == [(0, 2, True), (1, 2, False)]
    s = tracker.summary()
    assert s["return_mean"] == (-0.7 + 1.5) / 2 and s["success_rate"] == 0.5  # env 0 succeeded with return < 0
    tracker.update(np.array([0.0, 2.0]), np.array([False, True]), {})  # no flag: positive return = success
    assert tracker.summary()["success_rate"] == 2 / 3 and tracker.total_episodes == 3


def test_sampling_from_the_actors_generator_is_categorical_sampling():
    logits = torch.randn(64, 7)
    torch.manual_seed(11)
    expected = torch.distributions.Categorical(logits=logits).sample()
    torch.manual_seed(11)
    drawn, _ = sample_actions(logits, torch.Generator().manual_seed(11))
    assert torch.equal(drawn, expected)
    again, _ = sample_actions(logits, torch.Generator().manual_seed(12))
    assert not torch.equal(again, expected)


def test_loop_reads_the_memory_once_per_observation_and_scores_episodes_like_the_env():
    config = TrainConfig(env_id="MiniGrid-MemoryS7-v0", agent="oracle", n_envs=3, cnn_features=32, critic_hidden=32)
    envs = make_vec_env(EnvSettings.from_config(config), config.n_envs)
    policy = build_policy(config, probe_env(config))
    reads = []
    read = policy.read_memory
    policy.read_memory = lambda *args: reads.append(1) or read(*args)  # type: ignore[method-assign]
    loop = EnvLoop(
        envs, Actor(policy, 3, torch.Generator().manual_seed(0)), EpisodeTracker(3, None, success_rule(config.env_id))
    )
    try:
        loop.reset(seed=5)
        assert len(reads) == 1
        returns, finished = np.zeros(3), []
        for t in range(260):  # MemoryS7 truncates episodes at 245 steps: every env finishes one
            step = loop.step()
            assert len(reads) == 2 + t
            assert step.memory_out.shape == (3, policy.memory_dim) and step.decision.action.shape == (3,)
            returns += step.reward
            for episode in step.finished:
                assert episode.episode_return == returns[episode.env]
                assert episode.success == (returns[episode.env] > 0)  # MiniGrid: success is a positive return
                finished.append(episode)
            returns[step.done] = 0.0
            assert torch.equal(loop.actor.episode_start.cpu(), torch.as_tensor(step.done))
    finally:
        envs.close()
    assert finished and loop.episodes.total_episodes == len(finished)
    assert set(loop.take_timings()) == {"time_env", "time_memory", "time_agent"}
