"""FrozenHopfield: x = E^T softmax(beta * cos(P o, E_i)), with a seeded Johnson-Lindenstrauss projection P."""

from __future__ import annotations

import math

import numpy as np
import torch

from shelm.memory.frozen_hopfield import FrozenHopfield


def _embeddings(vocab: int = 200, width: int = 16) -> torch.Tensor:
    return torch.randn(vocab, width, generator=torch.Generator().manual_seed(0))


def _obs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 7, 7, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_projection_is_seeded_and_scaled():
    emb = _embeddings()
    a, b = FrozenHopfield(emb, 147, beta=1.0, seed=3), FrozenHopfield(emb, 147, beta=1.0, seed=3)
    assert torch.equal(a.projection, b.projection) and a.projection.shape == (16, 147)
    assert not torch.equal(a.projection, FrozenHopfield(emb, 147, beta=1.0, seed=4).projection)
    big = FrozenHopfield(emb, 4096, beta=1.0, seed=0).projection
    assert math.isclose(big.var().item(), 4096 / 16, rel_tol=0.05)  # N(0, n/d)


def test_output_is_a_convex_combination_of_the_embeddings():
    emb = _embeddings()
    hopfield = FrozenHopfield(emb, 147, beta=5.0, seed=0)
    obs = _obs(8)
    weights = torch.softmax(5.0 * hopfield.similarities(obs), dim=-1)
    assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(8))
    out = hopfield(obs)
    torch.testing.assert_close(out, weights @ emb)
    assert (out <= emb.max(0).values + 1e-6).all() and (out >= emb.min(0).values - 1e-6).all()


def test_similarities_are_cosines_against_every_token():
    emb = _embeddings()
    hopfield = FrozenHopfield(emb, 147, beta=1.0, seed=0)
    obs = _obs(2)
    query = (obs.flatten(1).float() / 255) @ hopfield.projection.T
    expected = torch.nn.functional.cosine_similarity(query[:, None, :], emb[None, :, :], dim=-1)
    torch.testing.assert_close(hopfield.similarities(obs), expected, rtol=1e-5, atol=1e-5)


def test_beta_limits():
    emb = _embeddings()
    obs = _obs(4)
    zero = FrozenHopfield(emb, 147, beta=0.0, seed=0)
    torch.testing.assert_close(zero(obs), emb.mean(0).expand(4, -1), rtol=1e-5, atol=1e-6)
    sharp = FrozenHopfield(emb, 147, beta=1e5, seed=0)
    top1 = sharp.similarities(obs).argmax(-1)
    torch.testing.assert_close(sharp(obs), emb[top1], rtol=1e-5, atol=1e-5)


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def test_beta_one_roughly_preserves_distances_and_large_beta_disperses():
    """Johnson-Lindenstrauss: with beta = 1 the pairwise distances of outputs follow those of the inputs."""
    emb = torch.randn(2000, 64, generator=torch.Generator().manual_seed(0))
    base = torch.randint(0, 256, (1, 7, 7, 3), generator=torch.Generator().manual_seed(1)).float()
    noise = torch.randn(40, 7, 7, 3, generator=torch.Generator().manual_seed(2))
    scales = torch.linspace(0, 120, 40).view(-1, 1, 1, 1)  # observations at graded distances from a base
    obs = (base + scales * noise).clamp(0, 255).to(torch.uint8)
    rows, cols = np.triu_indices(40, k=1)
    d_obs = torch.cdist(obs.flatten(1).float(), obs.flatten(1).float()).numpy()[rows, cols]
    correlations = {}
    for beta in (1.0, 1000.0):
        out = FrozenHopfield(emb, 147, beta=beta, seed=0)(obs)
        correlations[beta] = _rank_correlation(d_obs, torch.cdist(out, out).numpy()[rows, cols])
    assert correlations[1.0] > 0.9
    assert correlations[1000.0] < correlations[1.0]


def test_state_round_trip():
    emb = _embeddings()
    a, b = FrozenHopfield(emb, 147, 1.0, seed=0), FrozenHopfield(emb, 147, 1.0, seed=9)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b(_obs(3)), a(_obs(3)))
