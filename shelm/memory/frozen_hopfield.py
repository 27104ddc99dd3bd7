"""FrozenHopfield (HELM, SPEC section 2): an observation becomes a convex combination of token embeddings.

x_t = E^T softmax(beta * cos(P o_t, E_i) over all tokens i)

with o_t the flattened observation in [0, 1] (n values), E [V, d] the LM's input token embeddings and
P [d, n] a random matrix fixed at construction, entries i.i.d. N(0, n/d) (Johnson-Lindenstrauss). The cosine
makes the scale of P irrelevant. beta = 0 gives the mean embedding, beta -> infinity the single most similar
token's embedding; beta = 1 roughly preserves distances between observations.
"""

from __future__ import annotations

import math

import torch


class FrozenHopfield:
    def __init__(self, embeddings: torch.Tensor, obs_size: int, beta: float, seed: int):
        width = embeddings.shape[1]
        generator = torch.Generator().manual_seed(seed)
        projection = torch.randn(width, obs_size, generator=generator) * math.sqrt(obs_size / width)
        self.embeddings = embeddings.detach().float()
        self.unit_embeddings = torch.nn.functional.normalize(self.embeddings, dim=-1)
        self.projection = projection.to(self.embeddings.device)
        self.beta = beta

    def similarities(self, obs: torch.Tensor) -> torch.Tensor:
        """cos(P o, E_i) for every token: obs uint8 [N, H, W, C] -> [N, V]."""
        flat = obs.flatten(1).float().div_(255.0).to(self.projection.device)
        query = torch.nn.functional.normalize(flat @ self.projection.T, dim=-1)
        return query @ self.unit_embeddings.T

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, H, W, C] -> [N, d]: one LM input vector per observation, inside the embeddings' convex hull."""
        weights = torch.softmax(self.beta * self.similarities(obs), dim=-1)
        return weights @ self.embeddings

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"projection": self.projection.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["projection"].shape != self.projection.shape:
            raise ValueError(
                f"projection of shape {tuple(state['projection'].shape)}, expected {tuple(self.projection.shape)}"
            )
        self.projection = state["projection"].to(self.projection.device)
