"""A prefix per episode (the instruction) in the LM's window: every step attends to it, the ring never overwrites
it, a new episode replaces it, and the eager, compiled and replayed paths all equal one forward pass over
prefix + episode under the mask that defines it."""

from __future__ import annotations

import pytest
import torch

from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.lm_backend import Prefix
from shelm.memory.weights import load_language_model

WIDTH = 32


def reference(model, prefix: torch.Tensor, inputs: torch.Tensor, mem_len: int, k: int) -> torch.Tensor:
    """One episode recomputed in one forward pass: prefix [P, d] at positions 0..P-1 (causal), then the steps'
    inputs [T*k, d]; a step position sees the whole prefix, the mem_len step positions before its step and, causally,
    its own step's. Returns the hidden state of each step's last position [T, d]."""
    p, length = prefix.shape[0], inputs.shape[0]
    total = p + length
    query, key = torch.arange(total)[:, None], torch.arange(total)[None, :]
    step_q, step_k = (query - p) // k, (key - p) // k
    in_window = (key >= p) & (key - p >= step_q * k - mem_len) & (key - p < step_q * k)
    own_step = (key >= p) & (step_k == step_q) & (key <= query)
    allowed = torch.where(query < p, key <= query, (key < p) | in_window | own_step)
    mask = torch.zeros(total, total).masked_fill(~allowed, torch.finfo(torch.float32).min)
    out = model.get_decoder()(
        inputs_embeds=torch.cat([prefix, inputs])[None],
        attention_mask=mask[None, None],
        position_ids=torch.arange(total)[None],
    )
    return out.last_hidden_state[0, p + k - 1 :: k]


def padded(prefixes: list[torch.Tensor], positions: int) -> Prefix:
    embeds = torch.zeros(len(prefixes), positions, WIDTH)
    for row, prefix in enumerate(prefixes):
        embeds[row, : len(prefix)] = prefix
    return Prefix(embeds, torch.tensor([len(p) for p in prefixes], dtype=torch.long))


@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize(("model_dir", "k"), [("tiny_llama_dir", 1), ("tiny_gpt2_dir", 2), ("tiny_llama_dir", 2)])
def test_every_step_attends_to_its_episodes_prefix_through_resets_and_a_slid_window(request, model_dir, k, compile):
    model = load_language_model(str(request.getfixturevalue(model_dir))).model
    generator = torch.Generator().manual_seed(0)
    mem_len, steps, n_envs, prefix_len = 3 * k, 12, 3, 5
    inputs = torch.randn(n_envs, steps, k, WIDTH, generator=generator)
    # Per env, one episode from step 0 and, for env 0, a second from step 7 with another prefix. Env 2 has none.
    first = [torch.randn(n, WIDTH, generator=generator) for n in (5, 2, 0)]
    second = torch.randn(3, WIDTH, generator=generator)
    memory = LanguageModelMemory(model, mem_len, k, compile=compile, prefix_len=prefix_len)
    memory.reset(n_envs)
    outputs = []
    for t in range(steps):
        starts = torch.zeros(n_envs, dtype=torch.bool)
        prefix = None
        if t == 0:
            starts[:], prefix = True, padded(first, prefix_len)
        elif t == 7:
            starts[0], prefix = True, padded([second], 4)  # narrower than prefix_len: padded rows are fine
        outputs.append(memory.step(inputs[:, t], starts, prefix))
    outputs = torch.stack(outputs, dim=1)
    flat = inputs.reshape(n_envs, steps * k, WIDTH)
    expected_first = reference(model, first[0], flat[0, : 7 * k], mem_len, k)
    torch.testing.assert_close(outputs[0, :7], expected_first, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        outputs[0, 7:], reference(model, second, flat[0, 7 * k :], mem_len, k), rtol=1e-4, atol=1e-4
    )
    for env in (1, 2):
        torch.testing.assert_close(
            outputs[env], reference(model, first[env], flat[env], mem_len, k), rtol=1e-4, atol=1e-4
        )
    # The prefix matters: without it env 1's outputs differ even after the window slid past its first steps.
    assert not torch.allclose(outputs[1, -1], reference(model, first[2], flat[1], mem_len, k)[-1], atol=1e-3)


def test_the_attention_replay_with_a_prefix_reproduces_the_steps(tiny_llama_dir):
    model = load_language_model(str(tiny_llama_dir)).model
    generator = torch.Generator().manual_seed(1)
    mem_len, steps, k = 4, 9, 1
    inputs = torch.randn(1, steps, k, WIDTH, generator=generator)
    prefix = torch.randn(3, WIDTH, generator=generator)
    memory = LanguageModelMemory(model, mem_len, k, prefix_len=4)
    memory.reset(1)
    stepped = torch.stack(
        [
            memory.step(inputs[:, t], torch.tensor([t == 0]), padded([prefix], 4) if t == 0 else None)
            for t in range(steps)
        ]
    )[:, 0]
    replay = memory.attention(inputs[0], prefix)
    assert replay.prefix == 3
    assert [a.shape for a in replay.attentions] == [(4, 3 + steps, 3 + steps)] * len(replay.attentions)
    torch.testing.assert_close(replay.outputs, stepped, rtol=1e-4, atol=1e-4)
    # The last step still attends to the instruction, long after it left a window of 4 steps.
    assert replay.attentions[0][:, -1, :3].sum() > 0


def test_a_prefix_longer_than_its_slots_is_refused(tiny_llama_dir):
    memory = LanguageModelMemory(load_language_model(str(tiny_llama_dir)).model, 4, prefix_len=2)
    memory.reset(1)
    with pytest.raises(ValueError, match="exceeds the 2 kept"):
        memory.step(torch.zeros(1, 1, WIDTH), torch.tensor([True]), padded([torch.zeros(3, WIDTH)], 3))
