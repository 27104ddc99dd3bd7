"""The frozen LM's step prepared for speed: fused weights, one forward per step, optionally compiled.

`LanguageModelMemory` asks one question per step of its language model: given k new input vectors per
environment and each environment's window of cached keys and values, what is the last hidden state? The
Hugging Face module answers it through generic machinery (cache objects, mask builders, per-layer dispatch).
A `PreparedDecoder` answers the same question for the architectures it knows, with:
- the frozen weights copied once into the step's dtype and fused (query/key/value into one matrix, the gated
  MLP's gate and up projections into one), so a layer is four matrix products;
- the window's keys and values as two plain tensors [layers, N, kv_heads, mem_len, head_dim] that the caller
  owns, and the new positions' keys and values returned rather than written, so the forward is a pure function
  that `torch.compile` turns into one graph (on the CPU inductor freezes the weights into it as constants and
  fuses the elementwise work between the matrix products; on CUDA the graph is captured and replayed);
- attention in two parts, so the window is never copied: the new queries' scores against the window's keys
  (masked where a slot holds nothing of this episode) and, causally, against the new positions' own keys, one
  softmax over both, then the weighted sum of both value sets.

      window slots (mem_len)          new positions (k)
      [ valid? | valid? | ... ]       [ 1 0 0 ]   query 0   each query sees every valid window slot
                                      [ 1 1 0 ]   query 1   and the new positions up to itself
                                      [ 1 1 1 ]   query 2

Known architectures: Llama-type decoders (Llama, SmolLM, Qwen2: RMSNorm, rotary positions, grouped-query
attention, SiLU-gated MLP, optional q/k/v biases) and GPT-2 (LayerNorm, learned positions, GELU MLP). Any
other model keeps the Hugging Face forward (`prepare_decoder` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN

LLAMA_TYPES = ("llama", "qwen2")
GPT2_TYPES = ("gpt2",)


def _frozen(tensor: torch.Tensor, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(tensor.detach().to(dtype).clone(), requires_grad=False)


def window_attention(
    query: torch.Tensor,
    new_keys: torch.Tensor,
    new_values: torch.Tensor,
    window_keys: torch.Tensor,
    window_values: torch.Tensor,
    window_bias: torch.Tensor,
    causal_bias: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Attention of k new positions over the window plus themselves, heads grouped onto their key/value head.

    query [N, H, k, hd]; new_keys/new_values [N, KVH, k, hd]; window_keys/values [N, KVH, M, hd];
    window_bias [N, 1, 1, M] (0 where valid, -inf-like where not); causal_bias [k, k]. Returns [N, k, H * hd].
    """
    n, heads, k, head_dim = query.shape
    kv_heads = new_keys.shape[1]
    group = heads // kv_heads
    # Query head h reads key/value head h // group: fold the group into the query rows, (g, position) order.
    grouped = query.reshape(n, kv_heads, group * k, head_dim)
    window_scores = (grouped @ window_keys.transpose(-1, -2)).float() * scale + window_bias
    new_scores = (grouped @ new_keys.transpose(-1, -2)).float() * scale + causal_bias.repeat(group, 1)
    weights = torch.softmax(torch.cat([window_scores, new_scores], dim=-1), dim=-1).to(query.dtype)
    window_len = window_keys.shape[2]
    out = weights[..., :window_len] @ window_values + weights[..., window_len:] @ new_values
    return out.reshape(n, heads, k, head_dim).transpose(1, 2).reshape(n, k, heads * head_dim)


class PreparedDecoder(nn.Module):
    """A frozen decoder stack as one pure step function (see the module docstring)."""

    n_layers: int
    kv_heads: int
    head_dim: int

    def positional(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """What the forward needs of the positions, computed outside it (rotary tables, or the ids themselves)."""
        raise NotImplementedError

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        positional: tuple[torch.Tensor, ...],
        window_keys: torch.Tensor,
        window_values: torch.Tensor,
        window_bias: torch.Tensor,
        causal_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs_embeds [N, k, d] in the step dtype; window_keys/values [L, N, KVH, M, hd].

        Returns the last position's final hidden state [N, d] and the new keys and values [L, N, KVH, k, hd].
        """
        raise NotImplementedError


class LlamaDecoder(PreparedDecoder):
    """RMSNorm -> grouped-query attention with rotary positions -> RMSNorm -> SiLU-gated MLP, pre-norm residual."""

    def __init__(self, model: PreTrainedModel, dtype: torch.dtype):
        super().__init__()
        config, decoder = model.config, model.get_decoder()
        self.rotary = decoder.rotary_emb
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.eps = float(config.rms_norm_eps)
        self.intermediate = int(config.intermediate_size)
        self.n_layers = len(decoder.layers)
        self.qkv = nn.ParameterList()
        self.qkv_bias = nn.ParameterList()
        self.out, self.gate_up, self.down = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        self.norm_in, self.norm_post = nn.ParameterList(), nn.ParameterList()
        for layer in decoder.layers:
            attn, mlp = layer.self_attn, layer.mlp
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            self.qkv.append(_frozen(torch.cat([p.weight for p in projections]), dtype))
            if attn.q_proj.bias is not None:
                self.qkv_bias.append(_frozen(torch.cat([p.bias for p in projections]), dtype))
            self.out.append(_frozen(attn.o_proj.weight, dtype))
            self.gate_up.append(_frozen(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), dtype))
            self.down.append(_frozen(mlp.down_proj.weight, dtype))
            self.norm_in.append(_frozen(layer.input_layernorm.weight, dtype))
            self.norm_post.append(_frozen(layer.post_attention_layernorm.weight, dtype))
        self.norm_final = _frozen(decoder.norm.weight, dtype)

    def _rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Normalised in float32, scaled in the step dtype (as the Hugging Face Llama does)."""
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x32.to(x.dtype)

    def positional(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        probe = torch.empty(0, dtype=dtype, device=position_ids.device)
        cos, sin = self.rotary(probe, position_ids)
        return cos.to(dtype)[:, None], sin.to(dtype)[:, None]  # [N, 1, k, hd]: broadcast over heads

    def forward(self, inputs_embeds, positional, window_keys, window_values, window_bias, causal_bias):
        cos, sin = positional
        n, k, _ = inputs_embeds.shape
        half = self.head_dim // 2
        scale = 1 / math.sqrt(self.head_dim)
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim

        def rotate(x: torch.Tensor) -> torch.Tensor:
            return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

        hidden = inputs_embeds
        new_keys, new_values = [], []
        for i in range(self.n_layers):
            qkv = nn.functional.linear(
                self._rms_norm(hidden, self.norm_in[i]), self.qkv[i], self.qkv_bias[i] if self.qkv_bias else None
            )
            q, key, value = qkv.split([q_size, kv_size, kv_size], dim=-1)
            q = rotate(q.view(n, k, self.heads, self.head_dim).transpose(1, 2))
            key = rotate(key.view(n, k, self.kv_heads, self.head_dim).transpose(1, 2))
            value = value.view(n, k, self.kv_heads, self.head_dim).transpose(1, 2)
            attended = window_attention(
                q, key, value, window_keys[i], window_values[i], window_bias, causal_bias, scale
            )
            hidden = hidden + nn.functional.linear(attended, self.out[i])
            gate, up = nn.functional.linear(self._rms_norm(hidden, self.norm_post[i]), self.gate_up[i]).split(
                [self.intermediate, self.intermediate], dim=-1
            )
            hidden = hidden + nn.functional.linear(nn.functional.silu(gate) * up, self.down[i])
            new_keys.append(key)
            new_values.append(value)
        return self._rms_norm(hidden[:, -1], self.norm_final), torch.stack(new_keys), torch.stack(new_values)


class GPT2Decoder(PreparedDecoder):
    """Learned positions added to the inputs; LayerNorm -> multi-head attention -> LayerNorm -> GELU MLP."""

    def __init__(self, model: PreTrainedModel, dtype: torch.dtype):
        super().__init__()
        config, decoder = model.config, model.get_decoder()
        self.heads = self.kv_heads = int(config.n_head)
        self.head_dim = int(config.n_embd) // self.heads
        self.eps = float(config.layer_norm_epsilon)
        self.activation: Callable[[torch.Tensor], torch.Tensor] = ACT2FN[config.activation_function]
        self.scale_by_layer = bool(config.scale_attn_by_inverse_layer_idx)
        self.n_layers = len(decoder.h)
        self.positions = _frozen(decoder.wpe.weight, dtype)
        self.params = nn.ParameterList()
        for block in decoder.h:
            # Conv1D stores [in, out]: transposed here to the [out, in] of nn.functional.linear.
            for tensor in (
                block.ln_1.weight,
                block.ln_1.bias,
                block.attn.c_attn.weight.T,
                block.attn.c_attn.bias,
                block.attn.c_proj.weight.T,
                block.attn.c_proj.bias,
                block.ln_2.weight,
                block.ln_2.bias,
                block.mlp.c_fc.weight.T,
                block.mlp.c_fc.bias,
                block.mlp.c_proj.weight.T,
                block.mlp.c_proj.bias,
            ):
                self.params.append(_frozen(tensor, dtype))
        self.final_weight, self.final_bias = _frozen(decoder.ln_f.weight, dtype), _frozen(decoder.ln_f.bias, dtype)

    def positional(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return (position_ids,)

    def _layer_norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, self.eps)

    def forward(self, inputs_embeds, positional, window_keys, window_values, window_bias, causal_bias):
        (position_ids,) = positional
        n, k, width = inputs_embeds.shape
        hidden = inputs_embeds + self.positions[position_ids]
        new_keys, new_values = [], []
        for i in range(self.n_layers):
            ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w, out_b = self.params[
                12 * i : 12 * i + 12
            ]
            qkv = nn.functional.linear(self._layer_norm(hidden, ln1_w, ln1_b), qkv_w, qkv_b)
            q, key, value = (t.view(n, k, self.heads, self.head_dim).transpose(1, 2) for t in qkv.split(width, -1))
            scale = 1 / math.sqrt(self.head_dim) / ((i + 1) if self.scale_by_layer else 1)
            attended = window_attention(
                q, key, value, window_keys[i], window_values[i], window_bias, causal_bias, scale
            )
            hidden = hidden + nn.functional.linear(attended, proj_w, proj_b)
            mlp_in = self._layer_norm(hidden, ln2_w, ln2_b)
            hidden = hidden + nn.functional.linear(
                self.activation(nn.functional.linear(mlp_in, fc_w, fc_b)), out_w, out_b
            )
            new_keys.append(key)
            new_values.append(value)
        final = self._layer_norm(hidden[:, -1], self.final_weight, self.final_bias)
        return final, torch.stack(new_keys), torch.stack(new_values)


def unsupported_reason(model: PreTrainedModel) -> str | None:
    """Why `model` has no prepared step (None: it has one)."""
    config = model.config
    model_type = getattr(config, "model_type", "")
    if model_type in GPT2_TYPES:
        if getattr(config, "reorder_and_upcast_attn", False) or not getattr(config, "scale_attn_weights", True):
            return "a GPT-2 with non-standard attention scaling"
        return None
    if model_type not in LLAMA_TYPES:
        return f"model type '{model_type}'"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "mlp_bias", False):
        return f"a {model_type} with a non-SiLU or biased MLP"
    if getattr(config, "use_sliding_window", False):
        return f"a {model_type} with sliding-window attention"
    return None


def prepare_decoder(model: PreTrainedModel, dtype: torch.dtype) -> PreparedDecoder | None:
    """The prepared step for `model` in `dtype` on the model's device, or None when its architecture has none."""
    if unsupported_reason(model) is not None:
        return None
    kind = GPT2Decoder if model.config.model_type in GPT2_TYPES else LlamaDecoder
    device = next(model.parameters()).device
    return kind(model, dtype).to(device).eval().requires_grad_(False)
