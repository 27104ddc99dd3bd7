"""SHELM's retrievers by name: the `retriever` setting picks one here.

A retriever module defines its `Retriever` (shelm.memory.retrieval) and a builder
`(config, LM tokenizer, LM weight hash, device) -> Retriever` that refuses settings it cannot serve in one line;
adding a retriever is that module plus one `register_retriever` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory import clip, imagenet, symbolic
from shelm.memory.retrieval import Retriever

RetrieverBuilder = Callable[[TrainConfig, Any, str, torch.device], Retriever]
"""(config, the LM's tokenizer, the SHA-256 of the LM's weights, device) -> the retriever."""

RETRIEVERS: dict[str, RetrieverBuilder] = {}
"""Builder per retriever name."""


def register_retriever(name: str, build: RetrieverBuilder) -> None:
    """Offer `build` as `retriever=NAME`."""
    RETRIEVERS[name] = build


def build_retriever(config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device) -> Retriever:
    """The retriever named by config.retriever ('auto' is resolved with the config)."""
    build = RETRIEVERS.get(config.retriever)
    if build is None:
        raise ShelmError(f"--set retriever={config.retriever}: expected one of auto, {', '.join(RETRIEVERS)}")
    return build(config, lm_tokenizer, lm_sha256, device)


register_retriever("symbolic", symbolic.build_symbolic_retriever)
register_retriever("imagenet", imagenet.build_imagenet_retriever)
register_retriever("clip", clip.build_clip_retriever)
