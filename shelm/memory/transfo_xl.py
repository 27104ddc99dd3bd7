"""The papers' language model: TransformerXL trained on WikiText-103, from its original files, without pickle.

HELM and SHELM used TransformerXL wt103 (18 layers, width 1024, 267,735 words). transformers dropped the class
because its files were read with pickle; this module reimplements the forward pass compactly and reads the
same files safely. `lm=transfo-xl:DIR` names a directory holding:

- `config.json`: the original configuration (vocab_size or n_token, cutoffs, d_model, d_embed, n_head, d_head,
  d_inner, div_val, n_layer, pre_lnorm, same_length, clamp_len; attn_type must be 0);
- `model.safetensors` or `pytorch_model.bin`: the state dict, read with `torch.load(weights_only=True)`, which
  builds tensors and plain containers only and refuses any other object instead of running its code. Names are
  the original ones, with or without the `transformer.` prefix of the LM-head model; the adaptive-softmax head
  (`crit.*`) and the fixed `pos_emb.inv_freq` are recognised and not needed. Every other name must match;
- `vocab.txt` (one symbol per line, the original vocabulary file), or `vocab.bin` / `vocab.pkl`: the vocabulary
  dict the original code saved (torch.save / pickle), of which shelm needs `idx2sym`. `vocab.bin` is read with
  `torch.load(weights_only=True)` too; `vocab.pkl` with an unpickler that builds builtin values plus exactly two
  classes, `collections.Counter` (the word counts) and `collections.OrderedDict` (`sym2idx`), the two the
  original dict holds. Any other class or function in either file is refused, so reading it cannot run code.

The model (attn_type 0, "relative partial learnable" attention): adaptive input embeddings scaled by
sqrt(d_model); per layer, scores (q_i + r_w_bias) . k_j + (q_i + r_r_bias) . W_r R(i - j) over the layer's
memory and the new positions, R the sinusoid of the distance clamped at clamp_len; output projection, residual
and layer norm, then a ReLU feed-forward with residual and layer norm (or layer norm first with pre_lnorm).

As memory, each environment keeps the last `mem_len` positions of its episode, as the original `mems`
mechanism did with segments of k positions (one step): every new position attends to those and, causally, to
the step's positions, and with same_length (the wt103 setting) only to the last mem_len positions including
itself. The original stored each layer's input hidden states and re-projected all of them into keys and
values at every step; a key or value depends only on its own position's hidden state (the distance enters
through the separate W_r R term), so this implementation stores the projected keys and values instead, in a
ring buffer like the other backend's, and computes each position's projections once: exactly the same
attention at the cost of k new positions per step, plus scores over the window. A new episode masks out that
environment's window (the reference zeroed it and kept attending), so its outputs equal a fresh model's.
An episode's prefix (its instruction, `prefix_len` > 0) is run through the model once at the episode's start, as
the positions just before its first step, and kept in slots before the ring: every step attends to it, beyond
same_length's reach, at its true distance clamped to the window's span (prefix + mem_len + k positions).
"""

from __future__ import annotations

import collections
import json
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shelm.errors import ShelmError, first_line
from shelm.memory.lm_backend import AttentionReplay, Prefix, check_prefix, check_window, keep_first_blocks, replay_mask

PREFIX = "transfo-xl:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
VOCAB_FILES = ("vocab.txt", "vocab.bin", "vocab.pkl")
LAYOUT = "config.json, pytorch_model.bin and vocab.bin from the transfo-xl-wt103 release (README: TransformerXL)"
# Parts of the original files the memory does not use: the word-prediction head and a fixed sinusoid table.
UNUSED = re.compile(r"crit\..*|pos_emb\.inv_freq")


@dataclass(frozen=True)
class TransfoXLConfig:
    vocab_size: int
    cutoffs: tuple[int, ...]
    d_model: int
    d_embed: int
    n_head: int
    d_head: int
    d_inner: int
    div_val: int
    n_layer: int
    pre_lnorm: bool
    same_length: bool
    clamp_len: int
    layer_norm_epsilon: float

    @classmethod
    def read(cls, path: Path) -> TransfoXLConfig:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ShelmError(f"could not read {path} ({first_line(exc)}); give TransformerXL's config.json") from None
        if not isinstance(raw, dict):
            raise ShelmError(f"{path} is not a JSON object; it must be TransformerXL's config.json")
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "the configuration") -> TransfoXLConfig:
        if raw.get("model_type", "transfo-xl") != "transfo-xl" or raw.get("attn_type", 0) != 0:
            raise ShelmError(
                f"{where} describes model_type={raw.get('model_type')!r}, attn_type={raw.get('attn_type')!r}; "
                "transfo-xl:DIR needs a TransformerXL with attn_type 0 (the pretrained wt103 model's)"
            )
        raw = {"vocab_size": raw.get("n_token"), **raw}
        required = ["vocab_size", "cutoffs", "d_model", "n_head", "d_head", "d_inner", "div_val", "n_layer"]
        missing = [key for key in required if raw.get(key) is None]
        if missing:
            raise ShelmError(f"{where} lacks {', '.join(missing)}; it must be TransformerXL's config.json")
        d_embed = raw.get("d_embed")
        try:  # defaults: the original configuration's (the wt103 model's), for files that predate a key
            return cls(
                vocab_size=int(raw["vocab_size"]),
                cutoffs=tuple(int(c) for c in raw["cutoffs"]),
                d_model=int(raw["d_model"]),
                d_embed=int(raw["d_model"] if d_embed in (None, -1) else d_embed),
                n_head=int(raw["n_head"]),
                d_head=int(raw["d_head"]),
                d_inner=int(raw["d_inner"]),
                div_val=int(raw["div_val"]),
                n_layer=int(raw["n_layer"]),
                pre_lnorm=bool(raw.get("pre_lnorm", False)),
                same_length=bool(raw.get("same_length", True)),
                clamp_len=int(raw.get("clamp_len", 1000)),
                layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-5)),
            )
        except (TypeError, ValueError) as exc:
            raise ShelmError(f"{where} has a value of the wrong type ({first_line(exc)})") from None


class AdaptiveEmbedding(nn.Module):
    """Ids in cluster i (between consecutive cutoffs) have d_embed / div_val**i dimensions, projected to d_model."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        if config.div_val == 1:
            bounds, widths = [0, config.vocab_size], [config.d_embed]
        else:
            bounds = [0, *config.cutoffs, config.vocab_size]
            widths = [config.d_embed // config.div_val**i for i in range(len(bounds) - 1)]
        self.emb_layers = nn.ModuleList(
            nn.Embedding(hi - lo, width) for lo, hi, width in zip(bounds, bounds[1:], widths, strict=False)
        )
        projected = config.div_val > 1 or config.d_embed != config.d_model
        self.emb_projs = nn.ParameterList(
            nn.Parameter(torch.zeros(config.d_model, width)) for width in widths if projected
        )
        self.scale = config.d_model**0.5

    def matrix(self) -> torch.Tensor:
        """[V, d_model]: the vector the original feeds for each word id (its embedding, projected and scaled)."""
        parts = [layer.weight for layer in self.emb_layers]
        if len(self.emb_projs):
            parts = [part @ proj.T for part, proj in zip(parts, self.emb_projs, strict=True)]
        return torch.cat(parts) * self.scale


class RelativeAttention(nn.Module):
    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        inner = config.n_head * config.d_head
        self.n_head, self.d_head, self.pre_lnorm = config.n_head, config.d_head, config.pre_lnorm
        self.qkv_net = nn.Linear(config.d_model, 3 * inner, bias=False)
        self.r_net = nn.Linear(config.d_model, inner, bias=False)
        self.o_net = nn.Linear(inner, config.d_model, bias=False)
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.r_w_bias = nn.Parameter(torch.zeros(config.n_head, config.d_head))
        self.r_r_bias = nn.Parameter(torch.zeros(config.n_head, config.d_head))

    def forward(
        self,
        h: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        masked: torch.Tensor,
        distance: torch.Tensor,
        rel: torch.Tensor,
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One layer's attention for q new positions; their weights [N, H, q, S] are appended to `attentions`
        when it is given (the analyses' replay)."""
        n, q, _ = h.shape
        x = self.layer_norm(h) if self.pre_lnorm else h
        # Head-major [N, H, positions, d_head] throughout, so that no product copies the window.
        query, key, value = self.qkv_net(x).view(n, q, 3, self.n_head, self.d_head).permute(2, 0, 3, 1, 4)
        keys[:, :, -q:], values[:, :, -q:] = key, value  # the step's own slots, at the end of the window
        content = (query + self.r_w_bias[:, None]) @ keys.transpose(-1, -2)
        # Position scores for every distance 0..L-1 (one product per head), then each slot takes its distance's.
        by_distance = (query + self.r_r_bias[:, None]).transpose(0, 1).reshape(self.n_head, n * q, -1) @ rel
        position = by_distance.view(self.n_head, n, q, -1).transpose(0, 1).gather(-1, distance)
        scores = (content + position).mul_(self.d_head**-0.5).masked_fill_(masked, torch.finfo(h.dtype).min)
        weights = scores.softmax(-1)
        if attentions is not None:
            attentions.append(weights)
        attended = (weights @ values).transpose(1, 2).reshape(n, q, -1)
        out = self.o_net(attended)
        return h + out if self.pre_lnorm else self.layer_norm(h + out)


class FeedForward(nn.Module):
    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.pre_lnorm = config.pre_lnorm
        # Index 2 held dropout in the original; the placeholder keeps the names CoreNet.0 and CoreNet.3.
        self.CoreNet = nn.Sequential(
            nn.Linear(config.d_model, config.d_inner),
            nn.ReLU(),
            nn.Identity(),
            nn.Linear(config.d_inner, config.d_model),
        )
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.pre_lnorm:
            return h + self.CoreNet(self.layer_norm(h))
        return self.layer_norm(h + self.CoreNet(h))


class Block(nn.Module):
    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.dec_attn = RelativeAttention(config)
        self.pos_ff = FeedForward(config)


class TransfoXL(nn.Module):
    """The TransformerXL stack without its word-prediction head; parameter names as in the original files."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.config = config
        self.word_emb = AdaptiveEmbedding(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self._embeddings: torch.Tensor | None = None

    def input_embeddings(self) -> torch.Tensor:
        """[V, d_model], computed once (1 GiB for wt103 in float32), on the model's current device and dtype."""
        weight = self.word_emb.emb_layers[0].weight
        cached = self._embeddings
        if cached is None or cached.device != weight.device or cached.dtype != weight.dtype:
            with torch.no_grad():
                self._embeddings = cached = self.word_emb.matrix()
        return cached

    def relative_keys(self, length: int) -> list[torch.Tensor]:
        """Per layer [n_head, d_head, length]: W_r R(d) for distances d = 0..length-1. They depend on the weights
        only, so a memory computes them once."""
        d = self.config.d_model
        distance = torch.arange(length, dtype=torch.float32)
        if self.config.clamp_len > 0:
            distance = distance.clamp(max=self.config.clamp_len)
        angles = torch.outer(distance, 1 / 10000 ** (torch.arange(0, d, 2.0) / d))
        weight = self.word_emb.emb_layers[0].weight
        sinusoid = torch.cat([angles.sin(), angles.cos()], -1).to(weight.device, weight.dtype)
        with torch.no_grad():
            return [
                block.dec_attn.r_net(sinusoid).view(length, self.config.n_head, -1).permute(1, 2, 0).contiguous()
                for block in self.layers
            ]

    def forward(
        self,
        x: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        allowed: torch.Tensor,
        distance: torch.Tensor,
        rel: list[torch.Tensor],
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x [N, q, d]: the input vectors of q new positions. keys/values per layer [N, n_head, S, d_head]: the
        window, whose last q slots receive these positions' projections. allowed [N, q, S]: which slots each
        new position attends to; distance [q, S]: its position minus the slot's (any value in range where not
        allowed); rel: `relative_keys(L)` with L > every allowed distance. Returns the last layer's output; with
        `attentions`, each layer's attention weights [N, n_head, q, S] are appended to it."""
        n, q, _ = x.shape
        masked = ~allowed[:, None]
        index = distance.expand(n, self.config.n_head, q, -1)
        h = x
        for i, block in enumerate(self.layers):
            h = block.pos_ff(block.dec_attn(h, keys[i], values[i], masked, index, rel[i], attentions))
        return h


class TransfoXLMemory:
    """TransformerXL with one window of `mem_len` positions per environment: the backend's `LanguageModelStep`."""

    def __init__(self, model: TransfoXL, mem_len: int, inputs_per_step: int = 1, prefix_len: int = 0):
        check_window(mem_len, inputs_per_step)
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.mem_len, self.k, self.prefix_len = mem_len, inputs_per_step, prefix_len
        self.output_dim = model.config.d_model
        weight = model.word_emb.emb_layers[0].weight
        self.device, self.dtype = weight.device, weight.dtype
        self.slots = prefix_len + mem_len + inputs_per_step  # the prefix's slots, the ring's, then the step's own
        self.rel = model.relative_keys(self.slots)
        self.n_envs = 0

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """E [V, d]: the vector fed for each word (FrozenHopfield's and SHELM's token embeddings)."""
        return self.model.input_embeddings()

    def window_bytes(self, n_envs: int) -> int:
        """Bytes of the key/value windows of `n_envs` environments (what `reset(n_envs)` allocates)."""
        config = self.model.config
        return len(self.model.layers) * 2 * n_envs * config.n_head * self.slots * config.d_head * self.dtype.itemsize

    def reset(self, n_envs: int) -> None:
        config = self.model.config
        shape = (len(self.model.layers), n_envs, config.n_head, self.slots, config.d_head)
        self.keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        # Environments step in lockstep, so one absolute position counter and one ring pointer serve all;
        # each environment only records where its episode began.
        self.slot_position = torch.full((self.mem_len,), -1, dtype=torch.long, device=self.device)  # -1: empty
        self.episode_begin = torch.zeros(n_envs, dtype=torch.long, device=self.device)
        # Each environment's prefix: which of its slots hold one, and at which positions (just before its episode).
        self.prefix_valid = torch.zeros(n_envs, self.prefix_len, dtype=torch.bool, device=self.device)
        self.prefix_position = torch.zeros(n_envs, self.prefix_len, dtype=torch.long, device=self.device)
        self.position, self.head, self.n_envs = 0, 0, n_envs

    @torch.no_grad()
    def step(
        self, inputs_embeds: torch.Tensor, episode_start: torch.Tensor, prefix: Prefix | None = None
    ) -> torch.Tensor:
        """inputs_embeds [N, k, d]; episode_start bool [N]; `prefix`: what the starting environments hold first
        (see `LanguageModelStep.step`). Returns the last position's hidden state [N, d]."""
        if inputs_embeds.shape[:2] != (self.n_envs, self.k):
            raise ValueError(f"expected inputs of shape [{self.n_envs}, {self.k}, d], got {list(inputs_embeds.shape)}")
        episode_start = episode_start.to(self.device)
        self.episode_begin[episode_start] = self.position
        self.prefix_valid[episode_start] = False
        if prefix is not None:
            self._write_prefix(episode_start.nonzero().squeeze(1), prefix)
        new = self.position + torch.arange(self.k, device=self.device)
        slot = torch.cat([self.slot_position, new])
        distance = new[:, None] - slot[None, :]
        allowed = (distance >= 0) & (slot >= self.episode_begin[:, None, None])
        if self.model.config.same_length:
            allowed &= distance < self.mem_len
        prefix_distance = new[None, :, None] - self.prefix_position[:, None, :]  # [N, k, P]
        allowed = torch.cat([self.prefix_valid[:, None, :].expand(-1, self.k, -1), allowed], dim=-1)
        distance = torch.cat([prefix_distance, distance.expand(self.n_envs, -1, -1)], dim=-1)
        out = self.model(
            inputs_embeds.to(device=self.device, dtype=self.dtype),
            list(self.keys),
            list(self.values),
            allowed,
            distance.clamp(0, self.slots - 1)[:, None],
            self.rel,
        )
        ring = (self.head + torch.arange(self.k, device=self.device)) % self.mem_len
        self.keys[:, :, :, self.prefix_len + ring] = self.keys[:, :, :, self.slots - self.k :]
        self.values[:, :, :, self.prefix_len + ring] = self.values[:, :, :, self.slots - self.k :]
        self.slot_position[ring] = new
        self.head = (self.head + self.k) % self.mem_len
        self.position += self.k
        return out[:, -1].float()

    def _fresh_window(self, n: int, length: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer, empty keys and values [n, n_head, length, d_head]: a pass whose window is only its own
        positions (a prefix's, or a replayed episode's) fills them."""
        config = self.model.config
        shape = (n, config.n_head, length, config.d_head)
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.model.layers]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.model.layers]
        return keys, values

    def _write_prefix(self, envs: torch.Tensor, prefix: Prefix) -> None:
        """Run each starting environment's prefix through the model, causally, as the positions just before its
        episode, and keep its keys and values in that environment's prefix slots."""
        check_prefix(prefix, len(envs), self.prefix_len)
        length = prefix.embeds.shape[1]
        if len(envs) == 0 or length == 0:
            return
        lengths = prefix.lengths.to(self.device)
        positions = torch.arange(length, device=self.device)
        distance = positions[:, None] - positions[None, :]
        keys, values = self._fresh_window(len(envs), length)
        self.model(
            prefix.embeds.to(device=self.device, dtype=self.dtype),
            keys,
            values,
            (distance >= 0).expand(len(envs), -1, -1),
            distance.clamp(0, self.slots - 1),
            self.rel,
        )
        for layer in range(len(self.model.layers)):
            self.keys[layer, envs, :, :length] = keys[layer]
            self.values[layer, envs, :, :length] = values[layer]
        self.prefix_valid[envs, :length] = positions < lengths[:, None]
        self.prefix_position[envs, :length] = self.position - lengths[:, None] + positions

    def metrics(self) -> dict[str, float]:
        """Nothing to report: this memory has no compiled step."""
        return {}

    @torch.no_grad()
    def attention(self, inputs: torch.Tensor, prefix: torch.Tensor | None = None) -> AttentionReplay:
        """inputs [T, k, d] of one episode, after its prefix [P, d] if it had one, fed at once, each position
        restricted to the window it had step by step (`replay_mask`, and with same_length its last mem_len
        positions, the prefix excepted): per layer [heads, P+T*k, P+T*k], and the outputs [T, d]."""
        steps, k, width = inputs.shape
        prefix = inputs.new_zeros(0, width) if prefix is None else prefix.to(inputs.dtype)
        first = len(prefix)
        length = first + steps * k
        inputs = torch.cat([prefix, inputs.reshape(steps * k, width)])
        config = self.model.config
        positions = torch.arange(length, device=self.device)
        distance = positions[:, None] - positions[None, :]
        allowed = replay_mask(steps, k, self.mem_len, first).to(self.device)
        if config.same_length:
            allowed[first:, first:] &= distance[first:, first:] < self.mem_len
        keys, values = self._fresh_window(1, length)
        attentions: list[torch.Tensor] = []
        out = self.model(
            inputs.reshape(1, length, -1).to(device=self.device, dtype=self.dtype),
            keys,
            values,
            allowed[None],
            distance.clamp(0, self.slots - 1),
            self.rel,
            attentions,
        )
        outputs = out[0, first + k - 1 :: k].float().cpu()
        return AttentionReplay([a[0].float().cpu() for a in attentions], outputs, first)


class WordVocabulary:
    """TransformerXL's word-level vocabulary, with the calls shelm makes of a tokenizer."""

    word_level = True  # every entry is a whole word (CLIP's shared-word matching relies on it)

    def __init__(self, symbols: list[str]):
        self.symbols = symbols
        self.index: dict[str, int] = {}
        for i, symbol in enumerate(symbols):
            self.index.setdefault(symbol, i)  # the original kept a symbol's first id
        self.unk = self.index.get("<unk>", self.index.get("<UNK>"))

    def __len__(self) -> int:
        return len(self.symbols)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.index)

    def encode(self, text: str) -> list[int]:
        """WikiText-103's convention: words split on whitespace, an inner hyphen is the word "@-@", and commas and
        dots inside numbers are "@,@" and "@.@". An unknown word is <unk>."""
        text = re.sub(r"(?<=\w)-(?=\w)", " @-@ ", text)
        text = re.sub(r"(?<=\d)([,.])(?=\d)", r" @\1@ ", text)
        ids = []
        for word in text.split():
            index = self.index.get(word, self.unk)
            if index is None:
                raise ShelmError(f"the word '{word}' is not in the TransformerXL vocabulary, which has no <unk>")
            ids.append(index)
        return ids

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text)}

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.symbols[i] for i in ids)


def directory_of(lm: str) -> Path:
    """The directory named by lm='transfo-xl:DIR', checked to hold a config.json."""
    path = Path(lm.removeprefix(PREFIX)).expanduser()
    if not (path / "config.json").is_file():
        raise ShelmError(f"lm='{lm}': {path} has no config.json; give the directory holding {LAYOUT}")
    return path


def _refused(path: Path, exc: Exception) -> ShelmError:
    """One line naming the object a restricted unpickler refused."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f"the object {found.group(1)}" if found else f"something unreadable ({first_line(exc, 120)})"
    return ShelmError(
        f"{path} holds {what}; shelm reads only tensors and plain values from it, so that loading runs no code. "
        "Use the original, unmodified files"
    )


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own error type for damaged files
            raise ShelmError(f"could not read {path} ({first_line(exc)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused(path, exc) from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ShelmError(f"could not read {path} ({first_line(exc)}); it must be a saved state dict") from None
    if not isinstance(state, dict):
        raise ShelmError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    odd = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise ShelmError(f"{path} holds non-tensor entries: {', '.join(map(str, odd[:5]))}; it must be a state dict")
    return state


def _names(keys: list[str]) -> str:
    shown = ", ".join(sorted(keys)[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _model_state(raw: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """The original names mapped to this module's: no `transformer.` prefix, unused parts dropped, and shared
    relative biases (one pair for all layers: untie_r false, or the original PyTorch code) given to every layer."""
    state = {key.removeprefix("transformer."): value for key, value in raw.items()}
    state = {key: value for key, value in state.items() if not UNUSED.fullmatch(key)}
    for name in ("r_w_bias", "r_r_bias"):
        if name in state:
            shared = state.pop(name)
            state.update({f"layers.{i}.dec_attn.{name}": shared for i in range(n_layer)})
    return state


def load_transfo_xl(directory: Path, dtype: torch.dtype) -> TransfoXL:
    """Build the model described by directory/config.json and fill it from the weights file (see module doc)."""
    config = TransfoXLConfig.read(directory / "config.json")
    path = next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), None)
    if path is None:
        raise ShelmError(f"{directory} has none of {', '.join(WEIGHT_FILES)}; give the directory holding {LAYOUT}")
    state = _model_state(_load_tensors(path), config.n_layer)
    with torch.device("meta"):  # shapes only: the file's tensors become the parameters
        model = TransfoXL(config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if missing or unexpected:
        pairs = (("missing", missing), ("unexpected", unexpected))
        problems = "; ".join(f"{kind} keys {_names(keys)}" for kind, keys in pairs if keys)
        raise ShelmError(f"{path} does not match its config.json: {problems}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ShelmError(f"{path}: {key} has shape {list(state[key].shape)}, but config.json implies {list(shape)}")
    model.load_state_dict({key: value.to(dtype) for key, value in state.items()}, assign=True)
    return model.eval().requires_grad_(False)


class _PlainUnpickler(pickle.Unpickler):
    """Builtin values plus Counter and OrderedDict; any other class or function is refused before it exists."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name in ("Counter", "OrderedDict"):
            return getattr(collections, name)
        raise pickle.UnpicklingError(f"GLOBAL {module}.{name} is not allowed")


def load_vocabulary(directory: Path) -> WordVocabulary:
    """The word list of directory's vocabulary file (see module doc), checked against config.json's vocab_size."""
    size = TransfoXLConfig.read(directory / "config.json").vocab_size
    path = next((directory / name for name in VOCAB_FILES if (directory / name).is_file()), None)
    if path is None:
        raise ShelmError(f"{directory} has none of {', '.join(VOCAB_FILES)}; give the directory holding {LAYOUT}")
    if path.suffix == ".txt":
        symbols: Any = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        try:
            if path.suffix == ".bin":
                contents = torch.load(path, map_location="cpu", weights_only=True)
            else:
                with path.open("rb") as f:
                    contents = _PlainUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise _refused(path, exc) from None
        except (OSError, RuntimeError, EOFError, ValueError) as exc:
            raise ShelmError(f"could not read {path} ({first_line(exc)})") from None
        symbols = contents.get("idx2sym") if isinstance(contents, dict) else None
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise ShelmError(f"{path} holds no word list (idx2sym); it must be TransformerXL's vocabulary file")
    if len(symbols) != size:
        raise ShelmError(f"{path} has {len(symbols)} words, but config.json says vocab_size={size}")
    return WordVocabulary(symbols)


class TransfoXLBackend:
    """`lm=transfo-xl:DIR`: the papers' TransformerXL from its original files (see the module docstring)."""

    name = "TransformerXL"

    def handles(self, lm: str) -> bool:
        return lm.startswith(PREFIX)

    def resolve(self, lm: str) -> str:
        return str(directory_of(lm))

    def load(self, source: str, dtype: torch.dtype) -> nn.Module:
        return load_transfo_xl(Path(source), dtype)

    def truncate(self, model: nn.Module, layers: int) -> int:
        assert isinstance(model, TransfoXL)
        return keep_first_blocks(model.layers, layers)

    def tokenizer(self, lm: str) -> WordVocabulary:
        return load_vocabulary(Path(self.resolve(lm)))

    def memory(
        self, model: nn.Module, mem_len: int, inputs_per_step: int, compile: bool, prefix_len: int = 0
    ) -> TransfoXLMemory:
        assert isinstance(model, TransfoXL)
        if compile:
            print("shelm: lm_compile: no prepared step for the TransformerXL; using the eager step", file=sys.stderr)
        return TransfoXLMemory(model, mem_len, inputs_per_step, prefix_len)
