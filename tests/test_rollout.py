import numpy as np
import pytest
import torch

from shelm.agents.lstm import LSTMAgent
from shelm.rollout import (
    RewardNormalizer,
    Rollout,
    episode_segments,
    segment_minibatches,
    step_minibatches,
)


def _rollout(n_steps=6, n_envs=3, memory_dim=2, state=None):
    torch.manual_seed(0)
    state = torch.zeros(n_envs, 0) if state is None else state
    r = Rollout.empty(n_steps, n_envs, (9, 9, 3), memory_dim, state)
    r.obs = torch.randint(0, 256, r.obs.shape, dtype=torch.uint8)
    r.memory = torch.randn(r.memory.shape)
    r.rewards = torch.randn(n_steps, n_envs)
    r.values = torch.randn(n_steps, n_envs)
    r.actions = torch.randint(0, 4, (n_steps, n_envs))
    r.dones[2, 0] = r.dones[4, 1] = True
    r.episode_start[1:] = r.dones[:-1]
    r.episode_start[0] = torch.tensor([True, False, False])
    return r


def test_gae_matches_a_hand_computation():
    r = _rollout()
    last = torch.randn(3)
    gamma, lam = 0.9, 0.8
    r.compute_returns(last, gamma, lam)
    rewards, values, dones = r.rewards.numpy(), r.values.numpy(), r.dones.numpy()
    expected = np.zeros_like(rewards)
    for n in range(3):
        adv = 0.0
        for t in reversed(range(6)):
            next_value = last[n].item() if t == 5 else values[t + 1, n]
            nonterminal = 0.0 if dones[t, n] else 1.0
            delta = rewards[t, n] + gamma * next_value * nonterminal - values[t, n]
            adv = delta + gamma * lam * nonterminal * adv
            expected[t, n] = adv
    np.testing.assert_allclose(r.advantages.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.returns.numpy(), expected + values, rtol=1e-5, atol=1e-6)


def test_episode_segments_cut_at_episode_starts():
    r = _rollout()
    assert episode_segments(r.episode_start) == [(0, 0, 3), (0, 3, 3), (1, 0, 5), (1, 5, 1), (2, 0, 6)]


def test_a_bptt_length_cuts_episodes_into_pieces_of_at_most_that_many_steps():
    r = _rollout()
    assert episode_segments(r.episode_start, 2) == [
        *[(0, 0, 2), (0, 2, 1), (0, 3, 2), (0, 5, 1)],
        *[(1, 0, 2), (1, 2, 2), (1, 4, 1), (1, 5, 1)],
        *[(2, 0, 2), (2, 2, 2), (2, 4, 2)],
    ]
    assert episode_segments(r.episode_start, 6) == episode_segments(r.episode_start)


def test_minibatches_cover_every_step_exactly_once():
    r = _rollout()
    r.compute_returns(torch.zeros(3), 0.99, 0.95)
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([b.advantages[b.mask] for b in step_minibatches(r, 4, g)])
    assert torch.equal(seen.sort().values, r.advantages.flatten().sort().values)
    seen = torch.cat([b.advantages[b.mask] for b in segment_minibatches(r, 2, g)])
    assert torch.equal(seen.sort().values, r.advantages.flatten().sort().values)
    r.states = torch.zeros(6, 3, 0)
    pieces = list(segment_minibatches(r, 3, g, bptt_length=2))
    assert all(b.mask.shape[0] <= 2 for b in pieces)
    seen = torch.cat([b.advantages[b.mask] for b in pieces])
    assert torch.equal(seen.sort().values, r.advantages.flatten().sort().values)


def test_segment_minibatches_keep_steps_in_order_and_pick_the_right_initial_state():
    state = torch.arange(3 * 2 * 4, dtype=torch.float32).view(3, 2, 4) + 1
    r = _rollout(state=state)
    r.compute_returns(torch.zeros(3), 0.99, 0.95)
    batches = list(segment_minibatches(r, 5, torch.Generator().manual_seed(1)))
    assert len(batches) == 5  # one segment each
    for b in batches:
        length = int(b.mask.sum())
        col = b.actions[:length, 0]
        matches = [
            (env, start)
            for env, start, seg_len in episode_segments(r.episode_start)
            if seg_len == length and torch.equal(r.actions[start : start + length, env], col)
        ]
        env, start = matches[0]
        if start == 0 and not r.episode_start[0, env]:
            assert torch.equal(b.initial_state[0], state[env])  # continues the previous rollout's episode
        else:
            assert torch.all(b.initial_state == 0)  # an episode starts: fresh state


@pytest.mark.parametrize("bptt_length", [0, 3])
def test_lstm_update_reproduces_the_rollout_logprobs_exactly(bptt_length: int):
    """The recurrent update must see the same inputs and state as the rollout did (ratio 1 at epoch 0), on whole
    episode segments and on pieces of at most `bptt_length` steps started from the states acting kept."""
    torch.manual_seed(0)
    agent = LSTMAgent((9, 9, 3), n_actions=4, lstm_hidden=16)
    n_steps, n_envs = 12, 3
    state = torch.randn(n_envs, 4, 16)  # a state carried over from a previous rollout
    r = Rollout.empty(n_steps, n_envs, (9, 9, 3), 0, state, keep_states=bptt_length > 0)
    episode_start = torch.tensor([False, True, False])
    with torch.no_grad():
        for t in range(n_steps):
            if r.states is not None:
                r.states[t] = state
            obs = torch.randint(0, 256, (n_envs, 9, 9, 3), dtype=torch.uint8)
            logits, value, state = agent.step(obs, torch.zeros(n_envs, 0), state, episode_start)
            dist = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            r.obs[t], r.episode_start[t], r.actions[t] = obs, episode_start, action
            r.logprobs[t], r.values[t] = dist.log_prob(action), value
            episode_start = torch.rand(n_envs) < 0.25
            r.dones[t] = episode_start
    r.compute_returns(torch.zeros(n_envs), 0.99, 0.95)
    with torch.no_grad():
        batches = list(segment_minibatches(r, 4, torch.Generator().manual_seed(0), bptt_length))
        if bptt_length:
            assert max(b.mask.shape[0] for b in batches) == bptt_length
        for b in batches:
            logits, values = agent.forward_sequences(b.obs, b.memory, b.initial_state)
            logprob = torch.distributions.Categorical(logits=logits).log_prob(b.actions)
            torch.testing.assert_close(logprob[b.mask], b.logprobs[b.mask], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(values[b.mask], b.values[b.mask], rtol=1e-5, atol=1e-5)


def test_reward_normalizer_tracks_the_std_of_discounted_returns():
    rng = np.random.default_rng(0)
    norm = RewardNormalizer(n_envs=4, gamma=0.9, clip=100.0)
    seen = []
    returns = np.zeros(4)
    for _ in range(300):
        rewards = rng.normal(2.0, 3.0, size=4)
        dones = rng.random(4) < 0.1
        out = norm(rewards, dones)
        returns = returns * 0.9 + rewards
        seen.append(returns.copy())
        np.testing.assert_allclose(out, rewards / np.sqrt(np.var(np.concatenate(seen)) + 1e-8), rtol=1e-4)
        returns[dones] = 0.0
    clipped = RewardNormalizer(n_envs=1, gamma=0.9, clip=1.0)
    assert clipped(np.array([1000.0]), np.array([False]))[0] == 1.0
