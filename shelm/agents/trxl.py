"""TrXL-PPO: a trained Transformer-XL memory over the agent's own past, the learned peer of the frozen-LM memory.

The papers compare their frozen language-model memory with agents that cannot remember (CNN-PPO) or barely do
(Impala-PPO's LSTM). This agent is the memory a Transformer-XL trained by PPO gives, after CleanRL's `ppo_trxl`
(which solves MiniGrid-MemoryS9 from 3x3 views), trained by shelm's one PPO trainer:

    obs_t -> CNN (32, 64 channels) -> x_t [trxl_dim] -> trxl_layers pre-LayerNorm Transformer-XL layers
          -> LayerNorm -> Linear + ReLU -> actor (logits) and critic (value), both linear

The CNN is the papers' two-convolution encoder (`CNNEncoder`) at the widths of the peer's first two convolutions:
at 84x84 frames the papers' 64-128 channels made the PPO update about 1.5x slower for the same Transformer-XL.

Memory. The input of every layer at every step (its hidden state) is cached. At layer l, step t attends with
trxl_heads heads over the cached layer-l inputs of the previous `trxl_memory_length` steps of its episode and over
its own layer-l input:

    q = W_q LN_q(h_t)      k_s = W_k LN_m(h_s + E(p_s)) + W_p P(t - s)      v_s = W_v LN_m(h_s + E(p_s))
    s in window + {t};     h'_t = h_t + W_o attention(q, k, v);      next layer's input = h'_t + FF(LN_f(h'_t))

with E and P the positional encodings below (each is zero where the chosen encoding does not use it).

The cache is the agent's state (the windowed layout of `shelm.agents.base`): it slides by one slot per step and is
emptied at every episode start, and empty slots are masked out of the attention, so a step never attends to a
previous episode and never directly to more than `trxl_memory_length` steps back. A deeper layer's cached inputs
were themselves computed attending to their own windows, so what a step knows reaches back up to trxl_layers x
trxl_memory_length steps of its episode (Transformer-XL's extended context). The cached inputs carry no gradient (as in
Transformer-XL and the peer): the update backpropagates through the attention over them (the norms and projections
that make their keys and values) and through the current step's own path, not into the steps that produced them.

Each step's record (what the cache keeps of it) is its input to every layer, then its position in its episode
p (0 at the episode's first step): [layers * dim + 1]. A step's own position is one past its newest cached step's,
or 0 when its window is empty (an episode start), so acting and the update derive it from the window alike.

Positional encoding (`trxl_positional_encoding`), all built from the sinusoid S(n) of Vaswani et al.: the sines,
then the cosines, of n times the dim/2 frequencies 10000^(-2i/dim), i = 0 .. dim/2 - 1.
- 'absolute' (the peer's default): E(p) = S(p), the position of the cached step in its episode, added to every
  layer's cached input before the norm that makes its key and its value; the query carries no position. As the peer
  does it: CleanRL's ppo_trxl adds its sinusoid, with the same frequencies and layout, to the cached inputs of every
  layer, which its keys and values (one shared LayerNorm of them) are made from, and none to the query. The peer
  reads its encodings from a table of the env's episode-step limit T, built counting down (row j encodes T - 1 - j)
  and indexed by the episode position, so its position p is encoded as S(T - 1 - p): for each frequency a fixed
  reflection of the sine-cosine pair of S(p), the same code up to a fixed orthogonal map. Here S(p) is computed for
  any position, so no episode-length bound is needed (the env's limit is not known to the agent, and some envs have
  none). E(p) of a cached step never changes, so each stored row's key and value are still computed once per update
  minibatch (`forward_windows`); the step's own input gets E of its own position.
- 'relative': P(d) = S(d) of how many steps back a key lies, d = 0 for the step itself up to
  `trxl_memory_length`, projected per layer without bias (W_p) and added to the key, as in Transformer-XL's relative
  attention (without its two global bias vectors), so a head can prefer recent or old steps. Queries and values carry
  no position. LN_m(h_s) does not depend on where s lies relative to t, so the keys and values are shared by every
  step whose window holds s, as above.
- 'none': no position at all (attention sees the window as a set; the order shows only through what the cached
  inputs themselves computed).

With `trxl_reconstruction_coef` > 0, a decoder (the CNN's layers in reverse: linear, then transposed convolutions)
reconstructs the frame from the features the heads read, and its binary cross-entropy on pixels in [0, 1], times the
coefficient, is added to PPO's loss, as the peer offers.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shelm.agents.base import Agent
from shelm.agents.encoders import CNNEncoder, conv_layout
from shelm.agents.lstm import orthogonal_linear

# The channels of the CNN's two convolutions (the peer's first two); its output width is the Transformer-XL's.
CNN_CHANNELS = (32, 64)
# Where the Transformer-XL's attention learns the order of the steps it attends to (see the module's docstring).
PositionalEncoding = Literal["absolute", "relative", "none"]
POSITIONAL_ENCODINGS: tuple[str, ...] = typing.get_args(PositionalEncoding)


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[P] -> [P, dim]: sines then cosines of each position times frequencies 1 .. 1/10000 in geometric steps."""
    half = (dim + 1) // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float().unsqueeze(-1) * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :dim]


@dataclass(frozen=True)
class Positions:
    """The positional encodings one forward pass gives every layer (see the module's docstring): for 'absolute',
    E of each stored row's episode position [R, D] and of each step's own [B, D]; for 'relative', P of W .. 0 steps
    back [W + 1, D]; None where the encoding does not use them."""

    stored: torch.Tensor | None = None
    own: torch.Tensor | None = None
    distances: torch.Tensor | None = None


class WindowAttentionLayer(nn.Module):
    """One pre-LayerNorm Transformer-XL layer for one query per batch row: attention over the row's window of cached
    inputs and its own input, then a feed-forward block, each added to the residual stream."""

    def __init__(self, dim: int, heads: int, relative_positions: bool):
        super().__init__()
        self.heads = heads
        self.norm_query = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        # W_p of the relative encoding; the absolute one adds its codes to the inputs and has no weights.
        self.position = nn.Linear(dim, dim, bias=False) if relative_positions else None
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        index: torch.Tensor,
        valid: torch.Tensor,
        positions: Positions,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D] this layer's input at each row's step; rows [R, D] cached inputs of this layer; index [B, W] the
        row of each window slot, oldest first; valid [B, W]; positions: the encodings the agent's setting uses.

        Returns the next layer's input [B, D] and the attention weights [B, heads, W + 1] (the step itself last).
        """
        batch, dim = x.shape
        per_head, window = dim // self.heads, index.shape[1]

        def per_head_rows(projection: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
            """[n, D] -> [heads, n, per_head] (heads first, so each head's windows gather into one contiguous block)."""
            return projection(inputs).view(len(inputs), self.heads, per_head).transpose(0, 1)

        # Each stored input's key and value, computed once and gathered into every window that holds it.
        if positions.stored is not None and positions.own is not None:  # absolute: each input's place in its episode
            rows, own_input = rows + positions.stored, x + positions.own
        else:
            own_input = x
        stored, own = self.norm_memory(rows), self.norm_memory(own_input)
        keys = per_head_rows(self.key, stored)[:, index]  # [heads, B, W, per_head]
        values = per_head_rows(self.value, stored)[:, index]
        own_key, own_value = per_head_rows(self.key, own), per_head_rows(self.value, own)  # [heads, B, per_head]
        query = per_head_rows(self.query, self.norm_query(x)).unsqueeze(2)  # [heads, B, 1, per_head]
        scores = torch.cat([query @ keys.transpose(-1, -2), query @ own_key.unsqueeze(-1)], dim=-1).squeeze(2)
        if self.position is not None and positions.distances is not None:
            # q . (k_s + W_p P(t - s)) = q . k_s + q . W_p P(t - s): the positions' part for every slot at once.
            offsets = self.position(positions.distances).view(window + 1, self.heads, per_head).permute(1, 2, 0)
            scores = scores + query.squeeze(2) @ offsets
        scores = scores / math.sqrt(per_head)  # [heads, B, W + 1]
        allowed = torch.cat([valid, valid.new_ones(batch, 1)], dim=1)
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        mixed = weights.to(values.dtype).unsqueeze(2)
        attended = (mixed[..., :window] @ values).squeeze(2) + mixed[..., window:].squeeze(2) * own_value
        attended = attended.transpose(0, 1).reshape(batch, dim)
        x = x + self.out(attended)
        return x + self.ff(self.norm_ff(x)), weights.transpose(0, 1)


class FrameDecoder(nn.Module):
    """features [B, dim] -> logits of the frame's pixels [B, C, H, W]: `CNNEncoder`'s layers in reverse."""

    def __init__(self, obs_shape: tuple[int, int, int], channels: tuple[int, int], dim: int):
        super().__init__()
        height, width, in_channels = obs_shape
        (k1, s1), (k2, s2) = conv_layout(height, width)
        first = ((height - k1) // s1 + 1, (width - k1) // s1 + 1)
        second = ((first[0] - k2) // s2 + 1, (first[1] - k2) // s2 + 1)
        self.sizes = (second, first, (height, width))
        self.linear = nn.Linear(dim, channels[1] * second[0] * second[1])
        self.up_second = nn.ConvTranspose2d(channels[1], channels[0], k2, s2)
        self.up_first = nn.ConvTranspose2d(channels[0], in_channels, k1, s1)
        self.channels = channels[1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        second, first, frame = self.sizes
        x = torch.relu(self.linear(features)).view(-1, self.channels, *second)
        x = torch.relu(self.up_second(x, output_size=first))
        return self.up_first(x, output_size=frame)


class TrXLAgent(Agent):
    """See the module's docstring. Its state is [N, memory_length, layers * dim + 2]: per slot the step's input to
    each layer and its position in its episode (its record), then 1.0 where the slot holds a step of the current
    episode."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        n_actions: int,
        layers: int = 2,
        heads: int = 4,
        dim: int = 256,
        memory_length: int = 64,
        reconstruction_coef: float = 0.0,
        positional_encoding: PositionalEncoding = "absolute",
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} does not split into {heads} heads")
        if positional_encoding not in POSITIONAL_ENCODINGS:
            raise ValueError(f"positional encoding {positional_encoding!r} is not one of {POSITIONAL_ENCODINGS}")
        self.window = memory_length
        self.inputs_size = layers * dim
        self.record_size = self.inputs_size + 1  # the layers' inputs, then the episode position
        self.dim = dim
        self.positional_encoding = positional_encoding
        self.encoder = CNNEncoder(obs_shape, channels=CNN_CHANNELS, features=dim)
        self.layers = nn.ModuleList(
            WindowAttentionLayer(dim, heads, relative_positions=positional_encoding == "relative")
            for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim)
        self.hidden = nn.Sequential(orthogonal_linear(dim, dim, gain=math.sqrt(2)), nn.ReLU())
        self.actor = orthogonal_linear(dim, n_actions, gain=0.01)
        self.critic = orthogonal_linear(dim, 1, gain=1.0)
        self.reconstruction_coef = reconstruction_coef
        self.decoder = FrameDecoder(obs_shape, CNN_CHANNELS, dim) if reconstruction_coef > 0 else None

    def initial_state(self, n_envs: int) -> torch.Tensor:
        return torch.zeros(n_envs, self.window, self.record_size + 1)

    def _positions(
        self, rows: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, Positions]:
        """Each step's position in its episode [B] (one past its newest cached step's; 0 when that slot is empty,
        at an episode start) and the encodings the layers add (made here, not at build, so that the memory
        pre-flight can refuse a huge window before anything is allocated)."""
        stored_positions = rows[:, self.inputs_size]
        own_positions = torch.where(valid[:, -1], stored_positions[index[:, -1]] + 1, 0.0)
        if self.positional_encoding == "absolute":
            stored, own = sinusoid(stored_positions, self.dim), sinusoid(own_positions, self.dim)
            return own_positions, Positions(stored=stored.to(rows.dtype), own=own.to(rows.dtype))
        if self.positional_encoding == "relative":  # W, W - 1, .., 0 steps back: the slots, oldest first, then the step
            distances = sinusoid(torch.arange(self.window, -1, -1, device=rows.device), self.dim)
            return own_positions, Positions(distances=distances)
        return own_positions, Positions()

    def _core(
        self, obs: torch.Tensor, rows: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits [B, A], values [B], the step's record [B, record_size] (each layer's input, detached, then its
        episode position), the attention weights [B, layers, heads, W + 1] and the heads' features [B, dim]."""
        x = self.encoder(obs)
        own_positions, positions = self._positions(rows, index, valid)
        inputs, weights = [], []
        for number, layer in enumerate(self.layers):
            inputs.append(x.detach())
            x, attention = layer(x, rows[:, number * self.dim : (number + 1) * self.dim], index, valid, positions)
            weights.append(attention)
        features = self.hidden(self.norm_out(x))
        logits, values = self.actor(features), self.critic(features).squeeze(-1)
        # float32: a bfloat16 record would round positions past 256
        record = torch.cat([*(i.float() for i in inputs), own_positions.float().unsqueeze(-1)], dim=-1)
        return logits, values, record, torch.stack(weights, dim=1), features

    def _window(self, state: torch.Tensor, episode_start: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The state with the windows of starting episodes emptied, and its windows as (rows, index, valid)."""
        state = state * (~episode_start).to(state.dtype).view(-1, 1, 1)
        n_envs = state.shape[0]
        rows = state[..., : self.record_size].reshape(n_envs * self.window, self.record_size)
        index = torch.arange(n_envs * self.window, device=state.device).view(n_envs, self.window)
        return state, rows, index, state[..., -1] > 0

    def step(self, obs, memory, state, episode_start):
        state, rows, index, valid = self._window(state, episode_start)
        logits, values, record, _, _ = self._core(obs, rows, index, valid)
        slot = torch.cat([record.to(state.dtype), state.new_ones(state.shape[0], 1)], dim=-1)
        return logits, values, torch.cat([state[:, 1:], slot.unsqueeze(1)], dim=1)

    def forward_windows(self, obs, memory, rows, index, valid):
        logits, values, _, _, features = self._core(obs, rows, index, valid)
        if self.decoder is None:
            return logits, values, None
        target = obs.permute(0, 3, 1, 2).float() / 255.0
        loss = F.binary_cross_entropy_with_logits(self.decoder(features).float(), target)
        return logits, values, self.reconstruction_coef * loss

    def window_attention(self, obs, memory, state, episode_start):
        _, rows, index, valid = self._window(state, episode_start)
        return self._core(obs, rows, index, valid)[3]

    def forward_sequences(self, obs, memory, initial_state):
        raise NotImplementedError("the update re-evaluates a windowed agent with forward_windows")
