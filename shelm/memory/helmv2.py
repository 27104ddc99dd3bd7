"""HELMv2's memory (SPEC section 3): image features, affinely mapped into the LM's token-embedding space.

Per step: an image encoder's features f (CLIP's image embedding as in the paper, or offline EfficientNet-Lite0's
pooled features), a fixed random projection R to the LM's width d where the widths differ, then each dimension
standardised and given the mean and std of that dimension of the token embeddings E:

    x = (f R - mu) / sigma * std(E) + mean(E)

mu and sigma are FIXED statistics of the projected features, measured once on frames of the task gathered by
random play (seeded by the run's seed) and saved with the run. The reference standardised with the current
batch's statistics, which breaks with one environment and makes an observation's vector depend on the
other environments; here one observation always maps to the same vector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from shelm.config import TrainConfig
from shelm.memory.helm import frozen_language_model, nearest_tokens
from shelm.memory.retrieval import MemoCache
from shelm.precision import autocast

if TYPE_CHECKING:
    from shelm.memory.weights import LMMemory

CALIBRATION_ENVS = 4
CALIBRATION_STEPS = 32


class ImageEncoder(Protocol):
    name: str
    feature_dim: int

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, C] -> [N, feature_dim]."""
        ...

    def identity(self) -> dict[str, Any]: ...


class AffineToEmbeddings:
    """features [N, F] -> [N, d] with the token embeddings' per-dimension mean and std."""

    def __init__(self, feature_dim: int, embeddings: torch.Tensor, seed: int):
        width = embeddings.shape[1]
        self.target_mean = embeddings.float().mean(0)
        self.target_std = embeddings.float().std(0)
        self.projection: torch.Tensor | None = None
        if feature_dim != width:
            generator = torch.Generator().manual_seed(seed)
            projection = torch.randn(feature_dim, width, generator=generator) / math.sqrt(feature_dim)
            self.projection = projection.to(embeddings.device)
        self.feature_mean = torch.zeros(width, device=embeddings.device)
        self.feature_std = torch.ones(width, device=embeddings.device)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        return features if self.projection is None else features @ self.projection

    def calibrate(self, features: torch.Tensor) -> None:
        """Fix mu and sigma from a calibration set of features [M, F] (never from the batch being mapped)."""
        projected = self.project(features)
        self.feature_mean = projected.mean(0)
        # A dimension constant over the calibration frames carries no information; keep it finite.
        self.feature_std = projected.std(0, unbiased=False).clamp_min(1e-5)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        standard = (self.project(features) - self.feature_mean) / self.feature_std
        return standard * self.target_std + self.target_mean

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"feature_mean": self.feature_mean.cpu(), "feature_std": self.feature_std.cpu()}
        return state if self.projection is None else {**state, "projection": self.projection.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"expected tensors {sorted(expected)}, got {sorted(state)}")
        for key, value in state.items():
            current = getattr(self, key)
            if value.shape != current.shape:
                raise ValueError(f"{key} of shape {tuple(value.shape)}, expected {tuple(current.shape)}")
            setattr(self, key, value.to(current.device))


class HELMv2Memory:
    def __init__(
        self,
        lm: LMMemory,
        encoder: ImageEncoder,
        mapping: AffineToEmbeddings,
        memo_size: int,
        lm_name: str,
        identity: dict[str, Any],
    ):
        self.lm, self.encoder, self.mapping = lm, encoder, mapping
        self.output_dim = lm.output_dim
        self.window_steps = lm.mem_len
        self.memo = MemoCache(memo_size)
        self.lm_name = lm_name
        self._identity = identity
        self._last: torch.Tensor | None = None

    def reset(self, n_envs: int) -> None:
        self.lm.reset(n_envs)
        self._last = None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The image encoder's features [N, F] (float32), computed under the LM's precision (`lm_dtype`)."""

        def compute(frames: torch.Tensor) -> tuple[torch.Tensor]:
            with autocast(self.lm.device, self._identity["lm_dtype"]):
                return (self.encoder.features(frames).float(),)

        return self.memo(obs, compute)[0]

    def step(
        self, obs: torch.Tensor, episode_start: torch.Tensor, info: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        return self.lm.step(self.lm_inputs(obs, info), episode_start)

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        inputs = self.mapping(self.features(obs).to(self.lm.device))
        self._last = inputs
        return inputs.unsqueeze(1)

    def last_words(self) -> list[list[tuple[str, float]]]:
        """The token whose embedding is nearest (cosine) to each environment's input vector."""
        if self._last is None:
            return []
        return nearest_tokens(self._last, self.lm.embedding_matrix, self.lm_name)

    def metrics(self) -> dict[str, float]:
        return {**self.memo.metrics(), **self.lm.metrics()}

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.mapping.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mapping.load_state_dict(state)


def calibration_frames(config: TrainConfig) -> torch.Tensor:
    """The distinct observations of a short random-play run of the task, seeded by the run's seed."""
    from shelm.envs import make_vec_env

    envs = make_vec_env(config.env_id, CALIBRATION_ENVS, "sync", config.minigrid_tile_size)
    rng = np.random.default_rng(config.seed)
    try:
        obs, _ = envs.reset(seed=config.seed)
        frames = [obs]
        for _ in range(CALIBRATION_STEPS - 1):
            obs, *_ = envs.step(rng.integers(envs.single_action_space.n, size=CALIBRATION_ENVS))
            frames.append(obs)
    finally:
        envs.close()
    return torch.as_tensor(np.unique(np.concatenate(frames), axis=0))


def build_image_encoder(config: TrainConfig, device: torch.device) -> ImageEncoder:
    if config.image_encoder == "clip":
        from shelm.memory.clip import CLIPFeatures

        return CLIPFeatures(config.clip_model, device)
    from shelm.memory.imagenet import ImageNetFeatures

    return ImageNetFeatures(device)


def build_helmv2_memory(config: TrainConfig, obs_shape: tuple[int, int, int], device: torch.device) -> HELMv2Memory:
    loaded, lm, dtype = frozen_language_model(config, device, config.mem_len)
    encoder = build_image_encoder(config, device)
    mapping = AffineToEmbeddings(encoder.feature_dim, lm.embedding_matrix.detach(), seed=config.seed)
    identity = {
        "kind": "helmv2",
        "lm": config.lm,
        "lm_sha256": loaded.sha256,
        "lm_layers": loaded.layers,
        "lm_dtype": dtype,
        "mem_len": config.mem_len,
        **encoder.identity(),
    }
    memory = HELMv2Memory(lm, encoder, mapping, config.memo_size, config.lm, identity)
    # Calibration frames go through the memo cache, so training starts with them cached.
    mapping.calibrate(memory.features(calibration_frames(config)).to(device))
    memory.memo.take_hit_rate()  # the hit rate logged with training counts training steps only
    return memory
