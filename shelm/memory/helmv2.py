"""HELMv2's memory: image features, affinely mapped into the LM's token-embedding space, remembered by the LM.

Per step: an image encoder's features f (CLIP's image embedding as in the paper, or offline EfficientNet-Lite0's
pooled features), a fixed random projection R to the LM's width d where the widths differ, then each dimension
standardised and given the mean and std of that dimension of the token embeddings E:

    x = (f R - mu) / sigma * std(E) + mean(E)

mu and sigma are FIXED statistics of the projected features, measured once on frames of the task gathered by
random play (the run's `EnvProbe`, seeded by the run's seed) and saved with the run. The reference standardised
with the current batch's statistics, which breaks with one environment and makes an observation's vector depend on
the other environments; here one observation always maps to the same vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from shelm.config import TrainConfig
from shelm.memory.base import FrozenLanguageModel, LanguageModelMemoryBase, frozen_language_model
from shelm.memory.clip import build_clip_features
from shelm.memory.imagenet import build_imagenet_features, check_one_frame
from shelm.precision import autocast
from shelm.probe import EnvProbe
from shelm.registry import Registry


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


class HELMv2Memory(LanguageModelMemoryBase[torch.Tensor]):
    """The image encoder's features, affinely mapped, one LM position per step; `last` is the last input vectors."""

    kind = "helmv2"

    def __init__(self, frozen: FrozenLanguageModel, encoder: ImageEncoder, mapping: AffineToEmbeddings, memo_size: int):
        super().__init__(frozen, memo_size)
        self.encoder, self.mapping = encoder, mapping

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The image encoder's features [N, F] (float32), computed under the LM's precision (`lm_dtype`)."""

        def compute(frames: torch.Tensor) -> tuple[torch.Tensor]:
            with autocast(self.lm.device, self.lm_dtype):
                return (self.encoder.features(frames).float(),)

        return self.memo(obs, compute)[0]

    def lm_inputs(self, obs: torch.Tensor, info: Mapping[str, Any] | None = None) -> torch.Tensor:
        inputs = self.mapping(self.features(obs).to(self.lm.device))
        self.last = inputs
        return inputs.unsqueeze(1)

    def last_words(self) -> list[list[tuple[str, float]]]:
        """The token whose embedding is nearest (cosine) to each environment's input vector."""
        if self.last is None:
            return []
        return self.nearest_token_words(self.last)

    def own_identity(self) -> dict[str, Any]:
        return self.encoder.identity()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.mapping.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mapping.load_state_dict(state)


ImageEncoderBuilder = Callable[[TrainConfig, torch.device], ImageEncoder]
"""(config, device) -> the image encoder, refusing settings it cannot serve in one line."""

IMAGE_ENCODERS: Registry[ImageEncoderBuilder] = Registry("image encoder", also_accepted=("auto",))
"""Builder per `image_encoder` setting ('auto', its default, picks imagenet)."""


def register_image_encoder(name: str, build: ImageEncoderBuilder, *, replace: bool = False) -> None:
    """Offer `build` as `image_encoder=NAME`; a name already registered is refused unless `replace`."""
    IMAGE_ENCODERS.register(name, build, replace=replace)


def build_image_encoder(config: TrainConfig, device: torch.device) -> ImageEncoder:
    """The image encoder named by config.image_encoder ('auto' is resolved with the config)."""
    build = IMAGE_ENCODERS.get(config.image_encoder, asked=f"--set image_encoder={config.image_encoder}")
    return build(config, device)


register_image_encoder("imagenet", build_imagenet_features)
register_image_encoder("clip", build_clip_features)


def build_helmv2_memory(config: TrainConfig, probe: EnvProbe, device: torch.device) -> HELMv2Memory:
    check_one_frame(config, probe.obs_shape, f"helmv2's image encoder ({config.image_encoder})")
    frozen = frozen_language_model(config, device)
    encoder = build_image_encoder(config, device)
    mapping = AffineToEmbeddings(encoder.feature_dim, frozen.step.embedding_matrix.detach(), seed=config.seed)
    memory = HELMv2Memory(frozen, encoder, mapping, config.memo_size)
    # The probe's frames of random play calibrate the mapping; they go through the memo cache, so training starts
    # with them cached.
    mapping.calibrate(memory.features(torch.as_tensor(probe.frames)).to(device))
    memory.memo.take_hit_rate()  # the hit rate logged with training counts training steps only
    return memory
