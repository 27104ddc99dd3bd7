"""CLIP, as the SHELM paper used it: retrieval of words for SHELM and image features for HELMv2.

`clip_model` is any model transformers loads as `CLIPModel` (a hub id already in the local Hugging Face cache,
or a directory with its tokenizer). No CLIP weights ship in any package registry, so this path is the paper's
method when you have CLIP, and shelm's offline defaults are the symbolic and imagenet retrievers.

The semantic database (the words SHELM can retrieve) holds the words that are whole-word tokens of BOTH
vocabularies, compared as words: CLIP marks a word's end ("ball</w>"), byte-level LMs a word's start ("Ġball") and
SentencePiece LMs likewise ("▁ball"); both markers are removed before comparing (the reference compared raw
strings and so lost every end-of-word token); in a word-level vocabulary (TransformerXL's) every entry is a
word. Each word's CLIP text embedding is averaged over the prompt templates and re-normalised. The database is
computed once and cached on disk under `$XDG_CACHE_HOME/shelm/clip-db/`, keyed by the CLIP weights, the LM's
vocabulary and the templates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.files import cache_dir, write_atomic
from shelm.memory.caches import cached_clip
from shelm.memory.imagenet import resize_frames

LM_WORD_START = ("Ġ", "▁")
CLIP_WORD_END = "</w>"


def shared_words(clip_tokenizer: Any, lm_tokenizer: Any) -> list[tuple[str, int]]:
    """(word, LM token id) for every alphabetic word that is a whole-word token of both vocabularies."""
    clip_words = {
        token[: -len(CLIP_WORD_END)]
        for token in clip_tokenizer.get_vocab()
        if token.endswith(CLIP_WORD_END) and token[: -len(CLIP_WORD_END)].isascii()
    }
    lm_words: dict[str, int] = {}
    word_level = getattr(lm_tokenizer, "word_level", False)
    for token, index in lm_tokenizer.get_vocab().items():
        if word_level:
            lm_words.setdefault(token, index)
        elif token.startswith(LM_WORD_START):
            lm_words.setdefault(token[1:], index)
    words = sorted(w for w in clip_words & lm_words.keys() if w.isalpha())
    return [(w, lm_words[w]) for w in words]


def text_embeddings(model: Any, tokenizer: Any, words: list[str], templates: list[str]) -> torch.Tensor:
    """[V, D]: each word's unit CLIP text embedding averaged over the templates, re-normalised."""
    total = torch.zeros(len(words), model.config.projection_dim)
    for template in templates:
        for start in range(0, len(words), 256):
            texts = [template.format(w) for w in words[start : start + 256]]
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            with torch.no_grad():
                features = _as_tensor(model.get_text_features(**batch))
            total[start : start + len(texts)] += torch.nn.functional.normalize(features, dim=-1)
    return torch.nn.functional.normalize(total, dim=-1)


def _as_tensor(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def parse_templates(text: str) -> list[str]:
    templates = [t.strip() for t in text.split(";") if t.strip()]
    bad = [t for t in templates if t.count("{}") != 1]
    if not templates or bad:
        raise ShelmError(
            f"prompt_templates={text!r}: give ';'-separated prompts each with one {{}} for the word, "
            "e.g. 'a render of {};a screenshot of a {}'"
        )
    return templates


class CLIPImages:
    """CLIP's image embedding of observations, resized to its input size."""

    def __init__(self, clip_model: str, device: torch.device):
        loaded = cached_clip(clip_model)
        self.model, self.tokenizer, self.sha256 = loaded.model.to(device), loaded.tokenizer, loaded.sha256
        self.device, self.clip_model = device, clip_model
        self.mean = torch.tensor(loaded.mean, device=device)
        self.std = torch.tensor(loaded.std, device=device)
        self.size = int(self.model.config.vision_config.image_size)
        self.feature_dim = int(self.model.config.projection_dim)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        images = resize_frames(obs.to(self.device), self.size, self.mean, self.std)
        with torch.no_grad():
            return _as_tensor(self.model.get_image_features(pixel_values=images))


class CLIPFeatures(CLIPImages):
    name = "clip"

    def identity(self) -> dict[str, Any]:
        return {"image_encoder": self.name, "clip_model": self.clip_model, "image_encoder_sha256": self.sha256}


class CLIPRetriever(CLIPImages):
    name = "clip"
    input_key = None
    pad_item = None

    def __init__(self, clip_model: str, lm_tokenizer: Any, lm_sha256: str, templates: list[str], device: torch.device):
        super().__init__(clip_model, device)
        pairs = shared_words(self.tokenizer, lm_tokenizer)
        if not pairs:
            raise ShelmError(f"clip_model '{clip_model}' and the language model share no whole-word tokens")
        self.vocabulary = [w for w, _ in pairs]
        self.token_ids = [[i] for _, i in pairs]
        self.database = self._database(lm_sha256, templates).to(device)

    def _database(self, lm_sha256: str, templates: list[str]) -> torch.Tensor:
        from safetensors.torch import load_file, save

        key = json.dumps([self.sha256, lm_sha256, templates, self.vocabulary]).encode()
        path = cache_dir() / "clip-db" / f"{hashlib.sha256(key).hexdigest()[:32]}.safetensors"
        if path.is_file():
            return load_file(path)["text_embeddings"]
        database = text_embeddings(self.model, self.tokenizer, self.vocabulary, templates)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, save({"text_embeddings": database.contiguous()}))
        return database

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> [B, V] cosine similarity of the image to every database word."""
        return torch.nn.functional.normalize(self.features(inputs), dim=-1) @ self.database.T

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        return self.token_ids

    def identity(self) -> dict[str, Any]:
        return {
            "retriever": self.name,
            "clip_model": self.clip_model,
            "retriever_sha256": self.sha256,
            "vocabulary_size": len(self.vocabulary),
        }


def build_clip_features(config: TrainConfig, device: torch.device) -> CLIPFeatures:
    """HELMv2's image_encoder=clip: the `clip_model` setting's image embedding."""
    return CLIPFeatures(config.clip_model, device)


def build_clip_retriever(config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device) -> CLIPRetriever:
    """SHELM's retriever=clip: the words CLIP and the LM share, scored with the `prompt_templates`."""
    templates = parse_templates(config.prompt_templates)
    return CLIPRetriever(config.clip_model, lm_tokenizer, lm_sha256, templates, device)
