"""SHELM's retrieval building blocks: top-k selection, the memo cache, and items as LM input vectors."""

from __future__ import annotations

import pytest
import torch

from shelm.errors import ShelmError
from shelm.memory.caches import MemoCache
from shelm.memory.retrieval import item_vectors, phrase_tokens, top_k
from shelm.memory.weights import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_with_tokenizer_dir):
    return load_tokenizer(str(tiny_llama_with_tokenizer_dir))


# --- top_k


def test_top_k_returns_the_best_items_best_first():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [3.0, -1.0, 2.0, 1.0]])
    ids, values = top_k(scores, 3, pad_item=None)
    assert ids.tolist() == [[1, 3, 2], [0, 2, 3]]
    assert torch.equal(values, torch.tensor([[0.9, 0.7, 0.5], [3.0, 2.0, 1.0]]))
    assert ids.dtype == torch.long


def test_top_k_with_ties_keeps_every_tied_item_and_sorted_scores():
    scores = torch.tensor([[0.2, 0.8, 0.8, 0.1, 0.5]])
    ids, values = top_k(scores, 3, pad_item=None)
    assert set(ids[0, :2].tolist()) == {1, 2} and ids[0, 2].item() == 4
    assert values.tolist() == [[pytest.approx(0.8), pytest.approx(0.8), pytest.approx(0.5)]]


def test_top_k_without_pad_keeps_non_positive_scores():
    # Similarities can be negative: without a pad item every slot is a real item.
    ids, values = top_k(torch.tensor([[-0.5, -0.1, -0.9]]), 2, pad_item=None)
    assert ids.tolist() == [[1, 0]]
    assert values.tolist() == [[pytest.approx(-0.1), pytest.approx(-0.5)]]


def test_top_k_pads_slots_without_a_positive_score():
    pad = 4
    scores = torch.tensor([[0.0, 2.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 0.0]])
    ids, values = top_k(scores, 3, pad_item=pad)
    assert ids.tolist() == [[1, 3, pad], [pad, pad, pad], [3, 2, 1]]
    assert values.tolist() == [[2.0, 0.5, 0.0], [0.0, 0.0, 0.0], [4.0, 3.0, 2.0]]
    # A negative score is "nothing" too, reported as 0.
    ids, values = top_k(torch.tensor([[-1.0, 1.0, 0.0]]), 2, pad_item=2)
    assert ids.tolist() == [[1, 2]] and values.tolist() == [[1.0, 0.0]]


# --- MemoCache


def _compute(calls):
    def compute(x):
        calls.append(x.shape[0])
        ids, values = top_k(x.float() * torch.arange(1, x.shape[1] + 1), 2, pad_item=None)
        return ids, values

    return compute


def test_memo_cache_returns_what_the_computation_returns():
    torch.manual_seed(0)
    inputs = torch.randint(0, 3, (12, 5), dtype=torch.uint8)
    inputs[6:] = inputs[:6]  # every row twice
    calls: list[int] = []
    cache = MemoCache(capacity=100)
    for batch in (inputs[:4], inputs[4:9], inputs[9:], inputs):
        cached = cache(batch, _compute(calls))
        direct = _compute([])(batch)
        assert len(cached) == 2
        for a, b in zip(cached, direct, strict=True):
            assert torch.equal(a, b) and a.dtype == b.dtype
    # A batch of all-cached rows never calls the computation; only missing rows are computed, in one call.
    assert all(n >= 1 for n in calls)
    distinct = len({bytes(r.numpy()) for r in inputs})
    assert sum(calls) <= 12 and len(cache.entries) == distinct


def test_memo_cache_counts_hits_and_misses():
    a, b, c = (torch.full((1, 3), v, dtype=torch.uint8) for v in (1, 2, 3))
    calls: list[int] = []
    cache = MemoCache(capacity=10)
    cache(torch.cat([a, b]), _compute(calls))  # 2 misses
    cache(torch.cat([a, b, c]), _compute(calls))  # 2 hits, 1 miss
    assert calls == [2, 1]
    assert (cache.hits, cache.misses) == (2, 3)
    assert cache.take_hit_rate() == pytest.approx(2 / 5)
    # The counters restart after every read; no lookups -> None.
    assert (cache.hits, cache.misses) == (0, 0)
    assert cache.take_hit_rate() is None
    cache(torch.cat([c, c, a]), _compute(calls))
    assert calls == [2, 1] and cache.take_hit_rate() == 1.0


def test_memo_cache_evicts_the_least_recently_used_entry():
    a, b, c = (torch.full((1, 3), v, dtype=torch.uint8) for v in (1, 2, 3))
    calls: list[int] = []
    cache = MemoCache(capacity=2)
    cache(a, _compute(calls))
    cache(b, _compute(calls))
    cache(a, _compute(calls))  # a is now the most recently used: b is the oldest
    cache(c, _compute(calls))  # evicts b
    assert len(cache.entries) == 2
    assert set(cache.entries) == {a[0].numpy().tobytes(), c[0].numpy().tobytes()}
    cache.take_hit_rate()
    cache(a, _compute(calls))
    assert cache.take_hit_rate() == 1.0
    before = len(calls)
    cache(b, _compute(calls))
    assert cache.take_hit_rate() == 0.0 and len(calls) == before + 1
    # b came back and pushed out c (a was used more recently).
    assert set(cache.entries) == {a[0].numpy().tobytes(), b[0].numpy().tobytes()}


def test_memo_cache_computes_a_repeated_missing_row_consistently():
    a = torch.full((1, 4), 7, dtype=torch.uint8)
    calls: list[int] = []
    cache = MemoCache(capacity=4)
    ids, values = cache(torch.cat([a, a, a]), _compute(calls))
    assert ids.shape == (3, 2) and torch.equal(ids[0], ids[1]) and torch.equal(ids[1], ids[2])
    assert torch.equal(values, _compute([])(torch.cat([a, a, a]))[1])
    assert len(cache.entries) == 1 and cache.misses == 3
    assert calls == [1]  # a view shown by several envs in one step is computed once


# --- phrase_tokens / item_vectors


def test_phrase_tokens_tokenise_a_word_inside_a_sentence(tokenizer):
    (ball,) = phrase_tokens(["ball"], tokenizer)
    assert tokenizer.convert_ids_to_tokens(ball) == ["Ġball"]
    (green_ball,) = phrase_tokens(["green ball"], tokenizer)
    assert tokenizer.convert_ids_to_tokens(green_ball) == ["Ġgreen", "Ġball"]


def test_phrase_tokens_drop_a_parenthesised_gloss(tokenizer):
    with_gloss, without = phrase_tokens(["red key (a thing that opens doors)", "red key"], tokenizer)
    assert with_gloss == without
    assert tokenizer.convert_ids_to_tokens(with_gloss) == ["Ġred", "Ġkey"]


def test_phrase_tokens_of_an_unknown_word_are_several_byte_pieces(tokenizer):
    (ids,) = phrase_tokens(["zebra"], tokenizer)
    assert len(ids) > 1
    assert tokenizer.decode(ids) == " zebra"


def test_phrase_tokens_refuse_an_empty_phrase(tokenizer):
    with pytest.raises(ShelmError, match="no word outside its parenthesised gloss"):
        phrase_tokens(["(only a gloss)"], tokenizer)


def test_item_vectors_are_the_mean_token_embedding():
    torch.manual_seed(0)
    embeddings = torch.randn(10, 6)
    vectors = item_vectors([[3], [1, 4], [2, 5, 9], [3, 3]], embeddings)
    assert vectors.shape == (4, 6)
    assert torch.equal(vectors[0], embeddings[3])
    torch.testing.assert_close(vectors[1], (embeddings[1] + embeddings[4]) / 2)
    torch.testing.assert_close(vectors[2], embeddings[[2, 5, 9]].mean(0))
    torch.testing.assert_close(vectors[3], embeddings[3])


def test_item_vectors_keep_the_embeddings_dtype():
    embeddings = torch.randn(5, 4).to(torch.bfloat16)
    vectors = item_vectors([[0], [1, 2]], embeddings)
    assert vectors.dtype == torch.bfloat16 and torch.equal(vectors[0], embeddings[0])
