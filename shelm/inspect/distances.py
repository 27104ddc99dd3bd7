"""Does the frozen mapping keep observations apart? (HELM paper, analysis of FrozenHopfield's beta.)

For the distinct observations of a few rollouts, the pairwise Euclidean distances between observations (pixels
in [0, 1]) beside the pairwise distances between their LM inputs, and the Spearman rank correlation between the
two. For HELM the LM inputs are recomputed with the run's own FrozenHopfield projection at several beta
(`HELMMemory.inputs_at_betas`): small beta keeps the ordering of distances (but, with a large vocabulary, squeezes
every input towards the mean embedding), large beta snaps each observation to its nearest token. For HELMv2 and
SHELM the LM inputs are those of their fixed mapping (for SHELM the k retrieved words' embeddings, concatenated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from shelm.errors import ShelmError
from shelm.inspect.figures import Analysis, save_figure
from shelm.inspect.trace import distinct_steps
from shelm.memory.helm import HELMMemory

BETAS = (1.0, 10.0, 100.0, 1000.0)
QUERY_SPACE = "query P o / |P o|"
MAX_OBSERVATIONS = 200
"""Distinct observations compared (in order of first appearance): the matrices stay readable and cheap."""


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """[n, D] -> [n, n] Euclidean distances (float64, so near-equal distances keep their order)."""
    x = x.double()
    return torch.cdist(x, x)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation between two distance matrices over their distinct pairs (upper triangle).

    Distances closer than 1e-6 of a matrix's largest are ranked as ties: rounding noise must not order pairs that
    are equally far apart (grid-world observations have many), or an exact distance-preserving map would score < 1.
    """
    rows, cols = torch.triu_indices(a.shape[0], a.shape[0], offset=1)
    x, y = (torch.round(m[rows, cols] / m.max().clamp(min=1e-300) * 1e6).numpy() for m in (a.double(), b.double()))
    return float(spearmanr(x, y).statistic)


def run(analysis: Analysis) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    memory = analysis.policy.language_model
    if memory is None:
        raise ShelmError(f"--what distances needs a language-model memory; {analysis.run_dir} has none")
    trace = analysis.rollout()
    steps = [step for _, step in distinct_steps(trace, MAX_OBSERVATIONS)]
    if len(steps) < 3:
        return {"observations": len(steps), "note": "fewer than 3 distinct observations: nothing to compare"}
    obs = torch.as_tensor(np.stack([s.obs for s in steps]))
    observation_space = pairwise_distances(obs.flatten(1).float() / 255.0)
    spaces: dict[str, torch.Tensor] = {}  # LM-input spaces
    before_softmax = None
    if isinstance(memory, HELMMemory):
        # FrozenHopfield's query: tells what the projection and the cosine do apart from what the softmax does.
        before_softmax = pairwise_distances(memory.queries(obs))
        for beta, inputs in memory.inputs_at_betas(obs, sorted({*BETAS, float(memory.beta)})).items():
            trained = " (trained)" if beta == memory.beta else ""
            spaces[f"beta={beta:g}{trained}"] = pairwise_distances(inputs)
    else:
        inputs = torch.as_tensor(np.stack([s.lm_inputs.reshape(-1) for s in steps]))
        spaces[f"{analysis.config.agent} mapping"] = pairwise_distances(inputs)
    # The scale of LM-input distances: the mean distance between two vocabulary embeddings (a sample of pairs).
    embeddings = memory.embedding_matrix.detach().float()
    pick = torch.randint(0, embeddings.shape[0], (2, 2000), generator=torch.Generator().manual_seed(0))
    token_distance = float((embeddings[pick[0]] - embeddings[pick[1]]).norm(dim=-1).mean())

    rows, cols = torch.triu_indices(len(steps), len(steps), offset=1)

    def describe(matrix: torch.Tensor) -> dict[str, Any]:
        return {
            "rank_correlation": rank_correlation(observation_space, matrix),
            "mean_distance": float(matrix[rows, cols].mean()),
            "distances": matrix.round(decimals=4).tolist(),
        }

    results = {name: describe(matrix) for name, matrix in spaces.items()}
    for result in results.values():
        result["mean_distance_over_token_distance"] = result["mean_distance"] / token_distance
    if before_softmax is not None:
        results = {QUERY_SPACE: describe(before_softmax), **results}
        spaces = {QUERY_SPACE: before_softmax, **spaces}

    panels = [("observations (pixels)", observation_space), *spaces.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], panels, strict=True):
        ax.imshow(matrix.numpy(), cmap="viridis")
        rho = f"\nSpearman ρ = {results[name]['rank_correlation']:.2f}" if name in results else ""
        ax.set_title(f"{name}{rho}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{analysis.config.agent} on {analysis.config.env_id}: pairwise distances, {len(steps)} observations")
    figure = save_figure(fig, analysis.figure_path("distances"))
    return {
        "observations": len(steps),
        "mean_token_distance": token_distance,
        "spaces": results,
        "observation_distances": observation_space.round(decimals=4).tolist(),
        "figures": [str(figure)],
    }
