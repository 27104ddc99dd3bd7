"""The Hugging Face backend's step: a frozen causal LM as a per-environment memory.

`LanguageModelMemory` feeds, for N environments at once, k new input vectors per environment into a frozen
Hugging Face causal LM and returns the last hidden state per environment. Each environment keeps its own
sliding window of the last `mem_len` positions as the model's key/value cache:

- the cache is a ring buffer per layer, [N, kv_heads, mem_len + k, head_dim]: mem_len ring slots plus k
  scratch slots where the current step's keys and values land. A step attends to the valid ring slots and,
  causally, to the scratch slots (Transformer-XL's segment + memory semantics); afterwards the scratch is
  copied over the oldest ring slots. A step therefore costs the same at any fill level, and no key is ever
  recomputed (the reference's Transformer-XL re-projected its whole memory every step);
- positions are per environment: step t of an episode gets position ids t*k .. t*k+k-1, and cached keys keep
  the positions they were computed with, so relative (rotary) position information stays consistent as the
  window slides;
- a new episode empties exactly that environment's window: its ring slots are masked out (attention weight
  exactly 0) and its position counter restarts, so its outputs equal those of a model that never saw the
  previous episode;
- with `prefix_len` > 0 each environment also keeps that many slots before the ring for its episode's prefix
  (an instruction): at the episode's start the prefix is run through the model once (positions 0..P-1, padding
  masked out), its keys and values fill those slots, and the episode's steps take positions from P on. The ring
  never overwrites them, so every step of the episode attends to the prefix.

Two implementations of the step share this bookkeeping and give equal outputs (within the dtype's rounding):
- the eager step calls the Hugging Face decoder with the window as its key/value cache; it works for any
  causal LM;
- the prepared step (`prepared_step.PreparedDecoder`: fused weights, one pure function per step, compiled by
  `torch.compile`) serves the architectures it knows and is several times faster. With it the window lives in
  two tensors [layers, N, kv_heads, mem_len, head_dim] and the step's new keys and values are written into the
  oldest slots after the forward. If compiling fails, the memory says so once and runs the prepared step eagerly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, CacheLayerMixin

from shelm.errors import ShelmError, first_line
from shelm.memory.lm_backend import AttentionReplay, Prefix, check_prefix, check_window, replay_mask
from shelm.memory.prepared_step import PreparedDecoder, prepare_decoder, unsupported_reason


class _RingLayer(CacheLayerMixin):
    """One layer's window of `window` slots (a prefix's, then the ring's) and k scratch slots: `update` writes the
    new keys into the scratch slots and returns the whole buffer."""

    is_sliding = False

    def __init__(self, n_envs: int, window: int, k: int):
        super().__init__()
        self.n_envs, self.window, self.k = n_envs, window, k

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        _, heads, _, dim = key_states.shape
        shape = (self.n_envs, heads, self.window + self.k, dim)
        self.keys = torch.zeros(shape, dtype=key_states.dtype, device=key_states.device)
        self.values = torch.zeros(
            (*shape[:3], value_states.shape[-1]), dtype=value_states.dtype, device=value_states.device
        )
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys[:, :, self.window :] = key_states
        self.values[:, :, self.window :] = value_states
        return self.keys, self.values

    def commit(self, slots: torch.Tensor) -> None:
        """Move the scratch slots into ring slots `slots` (the oldest ones)."""
        self.keys[:, :, slots] = self.keys[:, :, self.window :]
        self.values[:, :, slots] = self.values[:, :, self.window :]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.window + self.k, 0

    def get_seq_length(self) -> int:
        return self.window

    def get_max_length(self) -> int:
        return self.window + self.k


class _RingCache(Cache):
    def __init__(self, n_layers: int, n_envs: int, window: int, k: int):
        super().__init__(layers=[_RingLayer(n_envs, window, k) for _ in range(n_layers)])


def compile_decoder(decoder: PreparedDecoder, device: torch.device) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The prepared step compiled for `device` (one graph per batch size): on the CPU inductor freezes the
    weights into the graph as constants and fuses the elementwise work between the matrix products; on CUDA the
    graph is also captured and replayed (CUDA graphs)."""
    if device.type == "cuda":
        return torch.compile(decoder, dynamic=False, mode="reduce-overhead")
    return torch.compile(decoder, dynamic=False, options={"freezing": True})


def additive_bias(allowed: torch.Tensor) -> torch.Tensor:
    """The prepared step's attention bias for the float32 scores: 0 where `allowed`, float32's lowest where not."""
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill_(~allowed, torch.finfo(torch.float32).min)


class LanguageModelMemory:
    """A frozen causal LM with one sliding key/value window of `mem_len` positions per environment.

    The step computes in the model's dtype. `compile` asks for the prepared, compiled step (models whose
    architecture has none keep the eager step, and say so).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        mem_len: int,
        inputs_per_step: int = 1,
        compile: bool = False,
        prefix_len: int = 0,
    ):
        check_window(mem_len, inputs_per_step)
        self.model = model.eval()
        self.model.requires_grad_(False)
        # Only hidden states are needed: run the decoder stack, never the LM head.
        self.decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
        self.mem_len, self.k, self.prefix_len = mem_len, inputs_per_step, prefix_len
        self.slots = prefix_len + mem_len  # per environment: the prefix's slots, then the ring's
        self.output_dim = int(model.config.hidden_size)
        self.max_positions = self._position_limit(model)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.n_envs = 0
        self.prepared: PreparedDecoder | None = None
        self._compiled: Callable[..., tuple[torch.Tensor, ...]] | None = None
        self._compiled_shapes: set[int] = set()
        self.compile_seconds = 0.0
        if compile:
            reason = unsupported_reason(model)
            if reason is not None:
                print(f"shelm: lm_compile: no prepared step for {reason}; using the eager step", file=sys.stderr)
            else:
                self.prepared = prepare_decoder(model, self.dtype)
                self._compiled = compile_decoder(self.prepared, self.device)

    @staticmethod
    def _position_limit(model: PreTrainedModel) -> int | None:
        """Models with learned absolute positions (GPT-2) cannot go past their table; rotary ones can."""
        config = model.config
        learned = any(name.endswith(("wpe", "embed_positions")) for name, _ in model.named_modules())
        return (
            int(getattr(config, "n_positions", 0) or getattr(config, "max_position_embeddings", 0)) if learned else None
        )

    @property
    def embedding_matrix(self) -> torch.Tensor:
        """E [V, d]: the LM's input token embeddings (frozen)."""
        return self.model.get_input_embeddings().weight

    def window_bytes(self, n_envs: int) -> int:
        """Bytes of the key/value windows of `n_envs` environments (what `reset(n_envs)` allocates)."""
        config = self.model.config
        heads = int(getattr(config, "num_attention_heads", 0) or config.n_head)
        kv_heads = int(getattr(config, "num_key_value_heads", 0) or heads)
        head_dim = int(getattr(config, "head_dim", 0) or self.output_dim // heads)
        layers = int(config.num_hidden_layers)
        return n_envs * layers * 2 * kv_heads * (self.slots + self.k) * head_dim * self.dtype.itemsize

    def reset(self, n_envs: int) -> None:
        self.n_envs = n_envs
        if self.prepared is not None:
            prepared = self.prepared
            shape = (prepared.n_layers, n_envs, prepared.kv_heads, self.slots, prepared.head_dim)
            self.window_keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
            self.window_values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        else:
            self.cache = _RingCache(int(self.model.config.num_hidden_layers), n_envs, self.slots, self.k)
        self.valid = torch.zeros(n_envs, self.slots, dtype=torch.bool, device=self.device)
        self.positions = torch.zeros(n_envs, dtype=torch.long, device=self.device)
        self.head = 0  # the oldest ring slot; every env advances in lockstep, so one pointer serves all

    def _causal(self, size: int) -> torch.Tensor:
        """[size, size] bool: new position i sees new positions 0..i."""
        return torch.ones(size, size, dtype=torch.bool, device=self.device).tril()

    def _attention_mask(self) -> torch.Tensor:
        """Additive mask [N, 1, k, mem_len + k]: valid ring slots for every query, scratch slots causally."""
        causal = self._causal(self.k)
        allowed = torch.cat([self.valid[:, None, :].expand(-1, self.k, -1), causal.expand(self.n_envs, -1, -1)], dim=-1)
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        return mask.masked_fill_(~allowed, torch.finfo(self.dtype).min).unsqueeze(1)

    @torch.no_grad()
    def step(
        self, inputs_embeds: torch.Tensor, episode_start: torch.Tensor, prefix: Prefix | None = None
    ) -> torch.Tensor:
        """inputs_embeds [N, k, d]; episode_start bool [N]; `prefix`: what the starting environments hold first
        (see `LanguageModelStep.step`). Returns the last position's hidden state [N, d]."""
        if inputs_embeds.shape[:2] != (self.n_envs, self.k):
            raise ValueError(f"expected inputs of shape [{self.n_envs}, {self.k}, d], got {list(inputs_embeds.shape)}")
        episode_start = episode_start.to(self.device)
        self.valid[episode_start] = False
        self.positions[episode_start] = 0
        if prefix is not None:
            self._write_prefix(episode_start.nonzero().squeeze(1), prefix)
        position_ids = self.positions[:, None] + torch.arange(self.k, device=self.device)
        if self.max_positions is not None and int(position_ids.max()) >= self.max_positions:
            raise ShelmError(
                f"an episode reached position {int(position_ids.max())}, past the {self.max_positions} positions this "
                "language model has; use a model with rotary positions (e.g. the default smollm2) for longer episodes"
            )
        inputs_embeds = inputs_embeds.to(device=self.device, dtype=self.dtype)
        slots = self.prefix_len + (self.head + torch.arange(self.k, device=self.device)) % self.mem_len
        if self.prepared is not None:
            hidden = self._prepared_step(inputs_embeds, position_ids, slots)
        else:
            out = self.decoder(
                inputs_embeds=inputs_embeds,
                attention_mask=self._attention_mask(),
                position_ids=position_ids,
                cache=self.cache,
                use_cache=True,
            )
            for layer in self.cache.layers:
                layer.commit(slots)
            hidden = out.last_hidden_state[:, -1]
        self.valid[:, slots] = True
        self.head = (self.head + self.k) % self.mem_len
        self.positions += self.k
        return hidden.float()

    def _write_prefix(self, envs: torch.Tensor, prefix: Prefix) -> None:
        """Run each starting environment's prefix through the model from position 0 and keep its keys and values in
        that environment's prefix slots; its steps then continue at the position after the prefix."""
        check_prefix(prefix, len(envs), self.prefix_len)
        length = prefix.embeds.shape[1]
        if len(envs) == 0 or length == 0:
            return
        embeds = prefix.embeds.to(device=self.device, dtype=self.dtype)
        lengths = prefix.lengths.to(self.device)
        position_ids = torch.arange(length, device=self.device).expand(len(envs), -1)
        # Causal, so padding after a row's real positions changes none of their keys or values.
        causal = self._causal(length)
        if self.prepared is not None:
            prepared = self.prepared
            empty = torch.zeros(
                (prepared.n_layers, len(envs), prepared.kv_heads, 0, prepared.head_dim),
                dtype=self.dtype,
                device=self.device,
            )
            window_bias = torch.zeros(len(envs), 1, 1, 0, device=self.device)
            positional = prepared.positional(position_ids, self.dtype)
            args = (embeds, positional, empty, empty, window_bias, additive_bias(causal))
            _, keys, values = prepared(*args)  # eager: a prefix's shape varies, a compiled graph would recompile
            self.window_keys[:, envs, :, :length] = keys
            self.window_values[:, envs, :, :length] = values
        else:
            cache = _RingCache(len(self.cache.layers), len(envs), 0, length)
            mask = torch.zeros(length, length, dtype=self.dtype, device=self.device)
            mask.masked_fill_(~causal, torch.finfo(self.dtype).min)
            self.decoder(
                inputs_embeds=embeds,
                attention_mask=mask.expand(len(envs), 1, -1, -1),
                position_ids=position_ids,
                cache=cache,
                use_cache=True,
            )
            for layer, written in zip(self.cache.layers, cache.layers, strict=True):
                if not layer.is_initialized:
                    layer.lazy_initialization(written.keys, written.values)
                layer.keys[envs, :, :length] = written.keys
                layer.values[envs, :, :length] = written.values
        self.valid[envs, :length] = torch.arange(length, device=self.device) < lengths[:, None]
        self.positions[envs] = lengths

    def _prepared_step(
        self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, slots: torch.Tensor
    ) -> torch.Tensor:
        prepared = self.prepared
        assert prepared is not None
        args = (
            inputs_embeds,
            prepared.positional(position_ids, self.dtype),
            self.window_keys,
            self.window_values,
            additive_bias(self.valid)[:, None, None, :],
            additive_bias(self._causal(self.k)),
        )
        hidden, new_keys, new_values = self._run_prepared(args)
        self.window_keys[:, :, :, slots] = new_keys
        self.window_values[:, :, :, slots] = new_values
        return hidden

    def _run_prepared(self, args: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The compiled step, compiling on the first call for a batch size (timed into `compile_seconds`); if
        compilation fails, the eager prepared step from then on."""
        assert self.prepared is not None
        if self._compiled is None:
            return self.prepared(*args)
        if self.n_envs in self._compiled_shapes:
            hidden, new_keys, new_values = self._compiled(*args)
        else:
            started = time.perf_counter()
            try:
                hidden, new_keys, new_values = self._compiled(*args)
            except Exception as exc:  # any compiler failure: the eager step gives the same outputs
                print(
                    f"shelm: compiling the LM step failed ({first_line(exc, 160)}); using the eager prepared step",
                    file=sys.stderr,
                )
                self._compiled = None
                return self.prepared(*args)
            self._compiled_shapes.add(self.n_envs)
            self.compile_seconds += time.perf_counter() - started
        # CUDA graphs reuse their output buffers on the next replay: keep this step's outputs.
        if self.device.type == "cuda":
            hidden, new_keys, new_values = hidden.clone(), new_keys.clone(), new_values.clone()
        return hidden, new_keys, new_values

    def metrics(self) -> dict[str, float]:
        """Seconds spent compiling the step since the last call (reported, so the one-off cost is visible)."""
        seconds, self.compile_seconds = self.compile_seconds, 0.0
        return {"time_compile": seconds} if seconds else {}

    @torch.no_grad()
    def attention(self, inputs: torch.Tensor, prefix: torch.Tensor | None = None) -> AttentionReplay:
        """inputs [T, k, d] of one episode, after its prefix [P, d] if it had one, replayed at once through the Hugging
        Face decoder (eager attention, the fused kernels return no weights) under `replay_mask`: per layer
        [heads, P+T*k, P+T*k], and the outputs [T, d]."""
        steps, k, width = inputs.shape
        prefix = inputs.new_zeros(0, width) if prefix is None else prefix.to(inputs.dtype)
        length = len(prefix)
        allowed = replay_mask(steps, k, self.mem_len, length)
        mask = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill_(~allowed, torch.finfo(self.dtype).min)
        sequence = torch.cat([prefix, inputs.reshape(steps * k, width)])
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            out = self.decoder(
                inputs_embeds=sequence[None].to(device=self.device, dtype=self.dtype),
                attention_mask=mask[None, None].to(self.device),
                position_ids=torch.arange(length + steps * k, device=self.device)[None],
                output_attentions=True,
                use_cache=False,
            )
        finally:
            self.model.set_attn_implementation(previous)
        attentions = [a[0].float().cpu() for a in out.attentions]
        return AttentionReplay(attentions, out.last_hidden_state[0, length + k - 1 :: k].float().cpu(), length)
