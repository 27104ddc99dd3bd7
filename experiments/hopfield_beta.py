"""How far apart FrozenHopfield puts the LM inputs of different MiniGrid frames, for several beta.

The numbers behind docs/results.md ("HELM on MiniGrid-MemoryS7-v0"): frames of 16 envs x 32 uniformly random
steps (distinct ones only), the packaged SmolLM2's 49,152 token embeddings, projection seed 1.

Run: python experiments/hopfield_beta.py
"""

from __future__ import annotations

import numpy as np
import torch

from shelm.envs import EnvSettings, make_vec_env
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.memory.weights import load_language_model


def random_frames(env_id: str, n_envs: int = 16, steps: int = 32, seed: int = 0) -> torch.Tensor:
    envs = make_vec_env(EnvSettings(env_id), n_envs)
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    frames = [obs]
    for _ in range(steps - 1):
        obs, *_ = envs.step(rng.integers(3, size=n_envs))
        frames.append(obs)
    envs.close()
    return torch.as_tensor(np.unique(np.concatenate(frames), axis=0))


def main() -> None:
    embeddings = load_language_model("smollm2", layers=1).model.get_input_embeddings().weight.detach()
    frames = random_frames("MiniGrid-MemoryS7-v0")
    token_spread = torch.cdist(embeddings[:2000], embeddings[:2000]).mean()
    print(f"{len(frames)} distinct frames; mean distance between two token embeddings {token_spread:.2f}")
    print(f"uniform token weight {1 / len(embeddings):.1e}")
    for beta in (1, 100, 1000):
        hopfield = FrozenHopfield(embeddings, frames[0].numel(), beta, seed=1)
        cosine = hopfield.similarities(frames)
        weights = torch.softmax(beta * cosine, dim=-1)
        inputs = hopfield(frames)
        print(
            f"beta {beta:>4}: cosines {cosine.min():.2f}..{cosine.max():.2f}, "
            f"largest token weight {weights.max(-1).values.mean():.1e}, "
            f"mean distance between two frames' LM inputs {torch.cdist(inputs, inputs).mean():.3f}, "
            f"distinct top-1 tokens {len(set(weights.argmax(-1).tolist()))}"
        )


if __name__ == "__main__":
    main()
