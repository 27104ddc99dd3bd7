"""FrozenHopfield, HELM's frozen mapping: an observation becomes a convex combination of token embeddings.

x_t = E^T softmax(beta * cos(P o_t, E_i) over all tokens i)

with o_t the flattened observation in [0, 1] (n values), E [V, d] the LM's input token embeddings and
P [d, n] a random matrix fixed at construction, entries i.i.d. N(0, n/d) (Johnson-Lindenstrauss). The cosine
makes the scale of P irrelevant. beta = 0 gives the mean embedding, beta -> infinity the single most similar
token's embedding; beta = 1 roughly preserves distances between observations.

The two products (P o_t, then its cosine with all V embeddings) run in the language model's dtype: in bfloat16
they read half the bytes, which is what bounds them; the softmax over the vocabulary runs in float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class FrozenHopfield:
    def __init__(
        self, embeddings: torch.Tensor, obs_size: int, beta: float, seed: int, dtype: torch.dtype = torch.float32
    ):
        width = embeddings.shape[1]
        generator = torch.Generator().manual_seed(seed)
        projection = torch.randn(width, obs_size, generator=generator) * math.sqrt(obs_size / width)
        self.dtype = dtype
        self.embeddings = embeddings.detach().to(dtype)
        self.unit_embeddings = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1).to(dtype)
        self.projection = projection.to(self.embeddings.device)  # float32: the saved state, whatever the dtype
        self._projection = self.projection.to(dtype)
        self.beta = beta

    def similarities(self, obs: torch.Tensor) -> torch.Tensor:
        """cos(P o, E_i) for every token: obs uint8 [N, H, W, C] -> float32 [N, V]."""
        flat = obs.flatten(1).to(self.projection.device, self.dtype).div_(255.0)
        query = torch.nn.functional.normalize((flat @ self._projection.T).float(), dim=-1).to(self.dtype)
        return (query @ self.unit_embeddings.T).float()

    def queries(self, obs: torch.Tensor) -> torch.Tensor:
        """The unit query P o / |P o| in float32: obs uint8 [N, H, W, C] -> [N, d]. What the projection and the
        cosine make of an observation, apart from what the softmax over the vocabulary does."""
        flat = obs.flatten(1).to(self.projection.device, torch.float32).div(255.0)
        return torch.nn.functional.normalize(flat @ self.projection.T, dim=-1)

    def inputs_at_betas(self, obs: torch.Tensor, betas: Iterable[float]) -> dict[float, torch.Tensor]:
        """The LM input of each observation [N, d] at each beta, in float64, with this projection and these
        embeddings (the [N, V] similarities are computed once: beta only rescales them)."""
        similarities = self.similarities(obs).double()
        embeddings = self.embeddings.double()
        return {beta: torch.softmax(beta * similarities, dim=-1) @ embeddings for beta in betas}

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, H, W, C] -> [N, d]: one LM input vector per observation, inside the embeddings' convex hull."""
        weights = torch.softmax(self.beta * self.similarities(obs), dim=-1)
        return weights.to(self.dtype) @ self.embeddings

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"projection": self.projection.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["projection"].shape != self.projection.shape:
            raise ValueError(
                f"projection of shape {tuple(state['projection'].shape)}, expected {tuple(self.projection.shape)}"
            )
        self.projection = state["projection"].float().to(self.projection.device)
        self._projection = self.projection.to(self.dtype)
