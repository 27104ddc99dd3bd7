"""SHELM's memory end to end with a tiny LM and its tokenizer: retrieved words become k LM positions per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelm.agents import resolve_config
from shelm.cli import main
from shelm.envs import EnvSettings, make_vec_env, probe_env
from shelm.envs.minigrid import SYMBOLIC_VIEW
from shelm.errors import ShelmError
from shelm.memory.retrieval import top_k
from shelm.memory.shelm import build_shelm_memory
from shelm.memory.symbolic import SymbolicRetriever
from shelm.memory.weights import load_tokenizer

CPU = torch.device("cpu")
ENV = "MiniGrid-MemoryS7-v0"
OBS_SHAPE = (56, 56, 3)


def _config(lm_dir, env_id=ENV, **overrides):
    config, _ = resolve_config(env_id, "shelm", {"lm": str(lm_dir), "mem_len": 4, **overrides})
    return config


def _build(config):
    return build_shelm_memory(config, probe_env(config), CPU)


@pytest.fixture(scope="module")
def memory(tiny_llama_with_tokenizer_dir):
    return _build(_config(tiny_llama_with_tokenizer_dir, topk=2))


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_with_tokenizer_dir):
    return load_tokenizer(str(tiny_llama_with_tokenizer_dir))


@pytest.fixture
def fed(memory, monkeypatch):
    """Every input the LM is fed, as memory.step hands it over."""
    inputs: list[torch.Tensor] = []
    real_step = memory.lm.step

    def recording_step(inputs_embeds, episode_start, prefix=None):
        inputs.append(inputs_embeds.clone())
        return real_step(inputs_embeds, episode_start, prefix)

    monkeypatch.setattr(memory.lm, "step", recording_step)
    return inputs


def test_auto_is_the_symbolic_retriever_on_minigrid(tiny_llama_with_tokenizer_dir):
    assert _config(tiny_llama_with_tokenizer_dir).retriever == "symbolic"


def test_the_window_holds_mem_len_steps_of_k_positions(memory):
    assert memory.k == 2 and memory.lm.k == 2
    assert memory.lm.mem_len == 4 * 2 and memory.window_steps == 4
    assert memory.output_dim == 32
    assert memory.identity()["topk"] == 2 and memory.identity()["retriever"] == "symbolic"
    assert memory.state_dict() == {}


def test_item_vectors_are_the_lm_embeddings_of_the_words(memory, tokenizer):
    vocabulary = memory.retriever.vocabulary
    embeddings = memory.lm.embedding_matrix.detach()
    assert memory.vectors.shape == (len(vocabulary), 32)

    def embedding(token):  # in float32: the means below are taken in float32, then cast to the LM's dtype
        return embeddings[tokenizer.convert_tokens_to_ids(token)].float()

    dtype = embeddings.dtype
    assert torch.equal(memory.vectors[vocabulary.index("wall")], embedding("Ġwall").to(dtype))
    assert torch.equal(memory.vectors[vocabulary.index("nothing")], embedding("Ġnothing").to(dtype))
    torch.testing.assert_close(
        memory.vectors[vocabulary.index("green ball")], ((embedding("Ġgreen") + embedding("Ġball")) / 2).to(dtype)
    )
    torch.testing.assert_close(
        memory.vectors[vocabulary.index("locked red door")],
        ((embedding("Ġlocked") + embedding("Ġred") + embedding("Ġdoor")) / 3).to(dtype),
    )


def test_steps_feed_the_retrieved_words_vectors(memory, fed):
    envs = make_vec_env(EnvSettings(ENV), 2)
    retriever = SymbolicRetriever()
    rng = np.random.default_rng(0)
    try:
        obs, info = envs.reset(seed=0)
        memory.reset(2)
        start = torch.ones(2, dtype=torch.bool)
        for _ in range(5):
            out = memory.step(torch.as_tensor(obs), start, info)
            assert out.shape == (2, 32) and torch.isfinite(out).all()
            expected_ids, expected_scores = top_k(retriever.scores(torch.as_tensor(info[SYMBOLIC_VIEW])), 2, 39)
            ids, scores = memory.last
            assert torch.equal(ids, expected_ids) and torch.equal(scores, expected_scores)
            assert fed[-1].shape == (2, 2, 32)
            assert torch.equal(fed[-1], memory.vectors[expected_ids])
            words = memory.last_words()
            assert len(words) == 2 and all(len(row) == 2 for row in words)
            for row, row_ids in zip(words, expected_ids.tolist(), strict=True):
                assert [w for w, _ in row] == [retriever.vocabulary[i] for i in row_ids]
                assert row[0][1] >= row[1][1] >= 0
            obs, _, terminated, truncated, info = envs.step(rng.integers(0, 3, size=2))
            start = torch.as_tensor(terminated | truncated)
    finally:
        envs.close()
    assert len(fed) == 5


def test_the_first_view_of_memory_s7_is_read_as_its_objects(memory):
    envs = make_vec_env(EnvSettings(ENV), 2)
    try:
        obs, info = envs.reset(seed=0)
    finally:
        envs.close()
    memory.reset(2)
    memory.step(torch.as_tensor(obs), torch.ones(2, dtype=torch.bool), info)
    for row in memory.last_words():
        # The start room shows the objects to remember: two objects, named first, before any wall.
        (first, s1), (second, s2) = row
        assert first.endswith(("key", "ball")) and second.endswith(("key", "ball")) and s1 > 1 and s2 > 1


def test_repeated_views_come_from_the_memo_cache(memory):
    view = np.zeros((2, 7, 7, 3), dtype=np.uint8)
    view[..., 0] = 1
    view[:, 3, 4] = (6, 1, 0)  # a green ball two cells ahead
    obs = torch.zeros(2, *OBS_SHAPE, dtype=torch.uint8)
    memory.reset(2)
    memory.metrics()
    memory.memo.entries.clear()
    memory.step(obs, torch.ones(2, dtype=torch.bool), {SYMBOLIC_VIEW: view})
    memory.step(obs, torch.zeros(2, dtype=torch.bool), {SYMBOLIC_VIEW: view})
    # Step 1: both rows miss (a row is looked up before the batch is computed); step 2: both hit.
    assert memory.metrics() == {"memo_hit_rate": 0.5}
    assert len(memory.memo.entries) == 1
    assert memory.last_words() == [[("green ball", pytest.approx(1 + 1 / 3)), ("nothing", 0.0)]] * 2


def test_a_step_without_the_symbolic_view_is_refused(memory):
    memory.reset(1)
    with pytest.raises(ShelmError, match=SYMBOLIC_VIEW):
        memory.step(torch.zeros(1, *OBS_SHAPE, dtype=torch.uint8), torch.ones(1, dtype=torch.bool), {})


def test_topk_larger_than_the_vocabulary_is_refused(tiny_llama_with_tokenizer_dir):
    with pytest.raises(ShelmError, match="topk=41") as excinfo:
        _build(_config(tiny_llama_with_tokenizer_dir, topk=41))
    assert "40 words" in str(excinfo.value)


def test_the_symbolic_retriever_needs_an_env_that_gives_the_symbolic_view(tiny_llama_with_tokenizer_dir):
    config = _config(tiny_llama_with_tokenizer_dir, env_id="shelm/RandomMaze-v0", retriever="symbolic")
    with pytest.raises(ShelmError, match="retriever=symbolic") as excinfo:
        _build(config)
    assert "shelm/RandomMaze-v0" in str(excinfo.value) and SYMBOLIC_VIEW in str(excinfo.value)


def test_shelm_with_clip_steps(tiny_llama_with_tokenizer_dir, tiny_clip_dir, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = _config(tiny_llama_with_tokenizer_dir, retriever="clip", clip_model=str(tiny_clip_dir), topk=2)
    memory = _build(config)
    assert len(list((tmp_path / "shelm" / "clip-db").glob("*.safetensors"))) == 1
    vocabulary = memory.retriever.vocabulary
    assert {"ball", "door", "green", "key", "red"} <= set(vocabulary) and "zebra" not in vocabulary
    embeddings = memory.lm.embedding_matrix.detach()
    for i, word in enumerate(vocabulary):
        assert torch.equal(memory.vectors[i], embeddings[tokenizer.convert_tokens_to_ids("Ġ" + word)])
    envs = make_vec_env(EnvSettings(ENV), 2)
    try:
        obs, info = envs.reset(seed=0)
        memory.reset(2)
        out = memory.step(torch.as_tensor(obs), torch.ones(2, dtype=torch.bool), info)
        out = memory.step(torch.as_tensor(envs.step(np.array([2, 2]))[0]), torch.zeros(2, dtype=torch.bool), None)
    finally:
        envs.close()
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    words = memory.last_words()
    assert len(words) == 2
    for row in words:
        assert len(row) == 2 and all(w in vocabulary for w, _ in row)
        assert row[0][1] >= row[1][1] and all(-1 <= s <= 1 for _, s in row)


@pytest.mark.parametrize(
    ("agent", "extra", "fragment"),
    [
        ("shelm", ["--set", "retriever=word2vec"], "--set retriever=word2vec: expected one of auto, symbolic"),
        ("shelm", ["--set", "topk=0"], "topk=0 must be >= 1"),
        ("shelm", ["--set", "topk=41"], "topk=41 exceeds the 40 words of retriever=symbolic; choose 1..40"),
        ("shelm", ["--set", "retriever=clip", "--set", "clip_model=LM"], "is a 'llama' model, not CLIP"),
        ("helmv2", ["--set", "image_encoder=clip", "--set", "clip_model=LM"], "is a 'llama' model, not CLIP"),
        ("shelm", ["--set", "retriever=clip", "--set", "clip_model=./no/clip"], "clip_model='./no/clip' is not a"),
    ],
)
def test_bad_retrieval_settings_exit_2(tmp_path, tiny_llama_with_tokenizer_dir, capsys, agent, extra, fragment):
    """One line on stderr naming the value, exit code 2, and no run directory written."""
    lm = str(tiny_llama_with_tokenizer_dir)
    extra = [arg.replace("clip_model=LM", f"clip_model={lm}") for arg in extra]
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", agent, "--run-dir", str(run_dir)]
    assert main([*argv, "--set", f"lm={lm}", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shelm: error: ") and err.count("\n") == 1 and fragment in err, err
    assert not run_dir.exists()
