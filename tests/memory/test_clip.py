"""CLIP for SHELM with a tiny random CLIPModel: the shared vocabulary, the template-averaged text database
(cached on disk), image-to-word scores, and the errors a user can meet."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from shelm.errors import ShelmError
from shelm.memory import clip
from shelm.memory.clip import CLIPRetriever, parse_templates, shared_words, text_embeddings
from shelm.memory.image_models import load_clip
from shelm.memory.weights import load_tokenizer

# The whole words of conftest's tiny CLIP: shared with the tiny LM, or CLIP's only.
TINY_CLIP_SHARED = ["ball", "door", "green", "key", "red"]
TINY_CLIP_ONLY = ["kite", "zebra"]
TEMPLATES = ["a render of {}", "a {} showing", "{}"]
CPU = torch.device("cpu")


class _Vocab:
    def __init__(self, tokens):
        self.tokens = {t: i for i, t in enumerate(tokens)}

    def get_vocab(self):
        return dict(self.tokens)


@pytest.fixture(scope="module")
def lm_tokenizer(tiny_llama_with_tokenizer_dir):
    return load_tokenizer(str(tiny_llama_with_tokenizer_dir))


@pytest.fixture(scope="module")
def loaded(tiny_clip_dir):
    return load_clip(str(tiny_clip_dir))


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "shelm" / "clip-db"


def _retriever(clip_dir, lm_tokenizer, templates=TEMPLATES, lm_sha256="lm-hash"):
    return CLIPRetriever(str(clip_dir), lm_tokenizer, lm_sha256, list(templates), CPU)


# --- shared_words


def test_shared_words_compare_words_without_their_markers():
    clip_vocab = _Vocab(["ball</w>", "key</w>", "door", "zebra</w>", "3d</w>", "<|endoftext|>", "ba", "caf\u00e9</w>"])
    lm_vocab = _Vocab(["Ġball", "ball", "▁key", "Ġdoor", "Ġlava", "Ġ3d", "Ġ", "Ġcafé", "Ġzeb"])
    pairs = shared_words(clip_vocab, lm_vocab)
    # 'door' is no CLIP word (no end-of-word mark), 'zebra' and 'lava' are in one vocabulary only,
    # '3d' is not alphabetic and the non-ASCII CLIP word is skipped.
    assert pairs == [("ball", 0), ("key", 2)]


def test_shared_words_of_the_tiny_models(loaded, lm_tokenizer):
    clip_tokenizer = loaded.tokenizer
    pairs = shared_words(clip_tokenizer, lm_tokenizer)
    # Every single letter is a CLIP end-of-word token ("a</w>"); those the LM has as a word ("Ġa") are shared.
    letters = [c for c in string.ascii_lowercase if "Ġ" + c in lm_tokenizer.get_vocab()]
    assert "a" in letters
    assert [w for w, _ in pairs] == sorted([*TINY_CLIP_SHARED, "of", "render", "showing", *letters])
    for word, index in pairs:
        assert lm_tokenizer.convert_ids_to_tokens(index) == "Ġ" + word
        assert clip_tokenizer.tokenize(word) == [word + "</w>"]
    assert not {w for w, _ in pairs} & set(TINY_CLIP_ONLY)


# --- the text database


def test_text_embeddings_average_the_normalised_template_features(loaded):
    model, tokenizer = loaded.model, loaded.tokenizer
    words = ["ball", "zebra", "green", "kite"]
    database = text_embeddings(model, tokenizer, words, TEMPLATES)
    assert database.shape == (4, model.config.projection_dim)
    torch.testing.assert_close(database.norm(dim=-1), torch.ones(4))
    for i, word in enumerate(words):
        total = torch.zeros(model.config.projection_dim)
        for template in TEMPLATES:  # one text at a time: no padding involved
            with torch.no_grad():
                out = model.get_text_features(**tokenizer([template.format(word)], return_tensors="pt"))
            features = out if isinstance(out, torch.Tensor) else out.pooler_output
            total += features[0] / features[0].norm()
        torch.testing.assert_close(database[i], total / total.norm(), atol=1e-5, rtol=1e-5)
    # One template: exactly that template's unit feature.
    single = text_embeddings(model, tokenizer, ["ball"], ["{}"])
    with torch.no_grad():
        out = model.get_text_features(**tokenizer(["ball"], return_tensors="pt"))
    features = out if isinstance(out, torch.Tensor) else out.pooler_output
    torch.testing.assert_close(single[0], features[0] / features[0].norm(), atol=1e-6, rtol=1e-5)


def test_the_database_is_cached_on_disk(tiny_clip_dir, lm_tokenizer, cache_home, monkeypatch):
    first = _retriever(tiny_clip_dir, lm_tokenizer)
    files = list(cache_home.glob("*.safetensors"))
    assert len(files) == 1

    def never(*args, **kwargs):
        raise AssertionError("the database was recomputed instead of read from the cache")

    monkeypatch.setattr(clip, "text_embeddings", never)
    second = _retriever(tiny_clip_dir, lm_tokenizer)
    assert torch.equal(first.database, second.database)
    assert second.vocabulary == first.vocabulary
    # Other templates, or another LM, are another database: computed (here: refused) and never read from the old file.
    with pytest.raises(AssertionError, match="recomputed"):
        _retriever(tiny_clip_dir, lm_tokenizer, templates=["a render of {}"])
    with pytest.raises(AssertionError, match="recomputed"):
        _retriever(tiny_clip_dir, lm_tokenizer, lm_sha256="another-lm")


def test_different_templates_get_different_cache_files(tiny_clip_dir, lm_tokenizer, cache_home):
    a = _retriever(tiny_clip_dir, lm_tokenizer, templates=["a render of {}"])
    b = _retriever(tiny_clip_dir, lm_tokenizer, templates=["a {} showing"])
    assert len(list(cache_home.glob("*.safetensors"))) == 2
    assert a.vocabulary == b.vocabulary and not torch.allclose(a.database, b.database)


# --- scores


def test_scores_are_cosines_of_image_and_word_embeddings(tiny_clip_dir, lm_tokenizer, cache_home):
    retriever = _retriever(tiny_clip_dir, lm_tokenizer)
    assert retriever.pad_item is None and retriever.input_key is None
    assert retriever.vocabulary == [w for w, _ in shared_words(retriever.tokenizer, lm_tokenizer)]
    assert retriever.lm_tokens(lm_tokenizer) == [
        [lm_tokenizer.convert_tokens_to_ids("Ġ" + w)] for w in retriever.vocabulary
    ]
    rng = np.random.default_rng(0)
    frames = torch.as_tensor(rng.integers(0, 256, size=(3, 56, 56, 3), dtype=np.uint8))
    scores = retriever.scores(frames)
    assert scores.shape == (3, len(retriever.vocabulary))
    features = retriever.features(frames)
    assert features.shape == (3, 8)
    expected = torch.nn.functional.cosine_similarity(features[:, None, :], retriever.database[None], dim=-1)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert scores.abs().max() <= 1 + 1e-5
    # The batch does not change an image's scores.
    torch.testing.assert_close(retriever.scores(frames[1:2])[0], scores[1], atol=1e-5, rtol=1e-5)
    from shelm.memory.retrieval import top_k

    ids, values = top_k(scores, 3, retriever.pad_item)
    for row in range(3):
        order = scores[row].argsort(descending=True)[:3]
        assert ids[row].tolist() == order.tolist()
        assert (values[row][:-1] >= values[row][1:]).all()


def test_identity_names_the_model(tiny_clip_dir, lm_tokenizer, cache_home, loaded):
    retriever = _retriever(tiny_clip_dir, lm_tokenizer)
    identity = retriever.identity()
    assert identity["retriever"] == "clip" and identity["clip_model"] == str(tiny_clip_dir)
    assert identity["retriever_sha256"] == loaded.sha256 and len(loaded.sha256) == 64
    assert identity["vocabulary_size"] == len(retriever.vocabulary) > len(TINY_CLIP_SHARED)


# --- errors


def test_load_clip_refuses_a_model_that_is_not_clip(tiny_gpt2_dir):
    with pytest.raises(ShelmError) as excinfo:
        load_clip(str(tiny_gpt2_dir))
    message = str(excinfo.value)
    assert str(tiny_gpt2_dir) in message and "not CLIP" in message and "gpt2" in message


def test_load_clip_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(ShelmError, match=r"no config\.json"):
        load_clip(str(tmp_path))


def test_a_clip_sharing_no_words_with_the_lm_is_refused(tiny_clip_dir, tiny_llama_with_tokenizer_dir, cache_home):
    with pytest.raises(ShelmError, match="share no whole-word tokens"):
        _retriever(tiny_clip_dir, _Vocab(["Ġlava", "Ġwall", "a"]))


def test_parse_templates():
    assert parse_templates(" a render of {} ;a screenshot of a {};; ") == ["a render of {}", "a screenshot of a {}"]
    for bad in ["a render of", "a render of {};a screenshot", "{} and {}", " ; "]:
        with pytest.raises(ShelmError, match="prompt_templates"):
            parse_templates(bad)
