"""The LM memory's sliding key/value window and episode resets, checked against full recomputation."""

from __future__ import annotations

import pytest
import torch

from shelm.errors import ShelmError
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.weights import load_language_model


@pytest.fixture(params=["tiny_llama_dir", "tiny_gpt2_dir"])
def tiny_lm(request):
    return load_language_model(str(request.getfixturevalue(request.param))).model


def reference_outputs(model, inputs: torch.Tensor, mem_len: int, k: int) -> torch.Tensor:
    """Recompute one environment's episode from scratch in a single forward pass.

    inputs [T*k, d]. Step s's k positions attend to the mem_len positions before the step and, causally, to
    each other: the mask a sliding window must reproduce. Returns the hidden state of each step's last input.
    """
    length = inputs.shape[0]
    query, key = torch.arange(length)[:, None], torch.arange(length)[None, :]
    first = (query // k) * k
    allowed = ((key >= first - mem_len) & (key < first)) | ((key // k == query // k) & (key <= query))
    mask = torch.zeros(length, length).masked_fill(~allowed, torch.finfo(torch.float32).min)
    out = model.get_decoder()(
        inputs_embeds=inputs[None], attention_mask=mask[None, None], position_ids=torch.arange(length)[None]
    )
    return out.last_hidden_state[0, k - 1 :: k]


def run_episode(memory: LanguageModelMemory, inputs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """inputs [N, T, k, d], starts bool [T, N] -> outputs [N, T, d]."""
    return torch.stack([memory.step(inputs[:, t], starts[t]) for t in range(inputs.shape[1])], dim=1)


@pytest.mark.parametrize(("mem_len", "k"), [(4, 1), (6, 2), (50, 1)])
def test_sliding_window_equals_full_recomputation(tiny_lm, mem_len, k):
    torch.manual_seed(0)
    n_envs, steps = 3, 12  # 12 steps: windows of 4 and 6 positions slide several times
    inputs = torch.randn(n_envs, steps, k, 32)
    memory = LanguageModelMemory(tiny_lm, mem_len, inputs_per_step=k)
    memory.reset(n_envs)
    starts = torch.zeros(steps, n_envs, dtype=torch.bool)
    starts[0] = True
    outputs = run_episode(memory, inputs, starts)
    for env in range(n_envs):
        expected = reference_outputs(tiny_lm, inputs[env].reshape(steps * k, 32), mem_len, k)
        torch.testing.assert_close(outputs[env], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mem_len", [3, 20])
def test_new_episode_forgets_the_previous_one_exactly(tiny_lm, mem_len):
    """Env 0 starts a new episode at step 7 while env 1 continues; env 0 must then match a fresh memory."""
    torch.manual_seed(1)
    inputs = torch.randn(2, 16, 1, 32)
    starts = torch.zeros(16, 2, dtype=torch.bool)
    starts[0] = True
    starts[7, 0] = True
    memory = LanguageModelMemory(tiny_lm, mem_len)
    memory.reset(2)
    outputs = run_episode(memory, inputs, starts)

    fresh = LanguageModelMemory(tiny_lm, mem_len)
    fresh.reset(1)
    second_episode = inputs[:1, 7:]
    fresh_starts = torch.zeros(9, 1, dtype=torch.bool)
    fresh_starts[0] = True
    torch.testing.assert_close(
        outputs[0, 7:], run_episode(fresh, second_episode, fresh_starts)[0], rtol=1e-4, atol=1e-5
    )
    # The environment that did not reset is unaffected by its neighbour's reset.
    unaffected = reference_outputs(tiny_lm, inputs[1, :, 0], mem_len, 1)
    torch.testing.assert_close(outputs[1], unaffected, rtol=1e-4, atol=1e-5)
    # And the reset really changed something: without it, env 0 would remember its first episode.
    assert not torch.allclose(outputs[0, 7:], reference_outputs(tiny_lm, inputs[0, :, 0], mem_len, 1)[7:], atol=1e-4)


def test_the_frozen_model_never_requires_grad(tiny_lm):
    memory = LanguageModelMemory(tiny_lm, 4)
    memory.reset(2)
    out = memory.step(torch.randn(2, 1, 32, requires_grad=True), torch.ones(2, dtype=torch.bool))
    assert not out.requires_grad
    assert not any(p.requires_grad for p in tiny_lm.parameters())


def test_learned_positions_have_a_limit(tiny_gpt2_dir):
    model = load_language_model(str(tiny_gpt2_dir)).model  # n_positions = 64
    memory = LanguageModelMemory(model, 8)
    memory.reset(1)
    for _ in range(64):
        memory.step(torch.randn(1, 1, 32), torch.zeros(1, dtype=torch.bool))
    with pytest.raises(ShelmError, match="past the 64 positions"):
        memory.step(torch.randn(1, 1, 32), torch.zeros(1, dtype=torch.bool))
    memory.step(torch.randn(1, 1, 32), torch.ones(1, dtype=torch.bool))  # a new episode starts over


def test_bad_window_sizes(tiny_lm):
    with pytest.raises(ShelmError, match="mem_len=0 must be >= 1"):
        LanguageModelMemory(tiny_lm, 0)
    with pytest.raises(ShelmError, match=r"inputs per step \(4\) must be between 1 and mem_len \(3\)"):
        LanguageModelMemory(tiny_lm, 3, inputs_per_step=4)
