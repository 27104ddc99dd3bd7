"""SHELM's retrievers by name: the `retriever` setting picks one here.

A retriever module defines its `Retriever` (shelm.memory.retrieval) and a builder
`(config, LM tokenizer, LM weight hash, device) -> Retriever` that refuses settings it cannot serve in one line;
adding a retriever is that module plus one `register_retriever` line below, which also says where its words come
from (`inputs`): from the observation's pixels, or, for an oracle, from what the environment knows and no camera
shows. A name is registered once (`replace=True` replaces it). Labels, tables and pages ask `retriever_inputs` and
`retriever_is_oracle` by name, so that a result of an oracle retriever says so wherever it is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.memory import clip, imagenet, regions, symbolic
from shelm.memory.retrieval import Retriever
from shelm.registry import Registry

RetrieverBuilder = Callable[[TrainConfig, Any, str, torch.device], Retriever]
"""(config, the LM's tokenizer, the SHA-256 of the LM's weights, device) -> the retriever."""

PIXELS = "pixels"
"""The `inputs` of a retriever whose words come from the observation's image alone."""
ORACLE = "oracle: "
"""How the `inputs` of an oracle begin: its words come from the environment's state, which an agent that sees only
pixels cannot read (e.g. 'oracle: object names from the environment's state')."""


@dataclass(frozen=True)
class RegisteredRetriever:
    """One retriever: how to build it and where its words come from."""

    build: RetrieverBuilder
    inputs: str
    """Where its words come from, in a few words: PIXELS, or ORACLE + what it reads for an oracle."""


RETRIEVERS: Registry[RegisteredRetriever] = Registry("retriever", also_accepted=("auto",))
"""Each retriever by name ('auto', the `retriever` setting's default, picks one of them per env)."""


def register_retriever(name: str, build: RetrieverBuilder, *, inputs: str, replace: bool = False) -> None:
    """Offer `build` as `retriever=NAME`. `inputs` says where its words come from: PIXELS ('pixels') for one that
    reads the observation's image, ORACLE + what it reads ('oracle: ...') for one that reads the environment's
    state, or a few other words (one line). A name already registered is refused unless `replace`."""
    if not isinstance(inputs, str) or not inputs.strip() or "\n" in inputs:
        raise ShelmError(
            f"register_retriever({name!r}): inputs = {inputs!r} is not a one-line description; give e.g. "
            f"inputs={PIXELS!r} or inputs='{ORACLE}object names from the environment's state'"
        )
    RETRIEVERS.register(name, RegisteredRetriever(build, inputs), replace=replace)


def retriever_inputs(name: str) -> str:
    """Where the words of retriever `name` come from, as registered (e.g. 'pixels')."""
    return RETRIEVERS.get(name, asked=f"retriever={name}").inputs


def retriever_is_oracle(name: str) -> bool:
    """Whether retriever `name` reads the environment's state rather than what the agent sees (its `inputs` begin
    with ORACLE)."""
    return retriever_inputs(name).startswith(ORACLE)


def retriever_label(name: str) -> str:
    """The retriever as labels name it: its name, with 'oracle' after an oracle's ('symbolic oracle'). A name this
    process has not registered (a run made with a retriever registered elsewhere) is shown as it is."""
    return f"{name} oracle" if name in RETRIEVERS and retriever_is_oracle(name) else name


def build_retriever(config: TrainConfig, lm_tokenizer: Any, lm_sha256: str, device: torch.device) -> Retriever:
    """The retriever named by config.retriever ('auto' is resolved with the config)."""
    registered = RETRIEVERS.get(config.retriever, asked=f"--set retriever={config.retriever}")
    return registered.build(config, lm_tokenizer, lm_sha256, device)


register_retriever(
    "symbolic", symbolic.build_symbolic_retriever, inputs=f"{ORACLE}object names from the environment's state"
)
register_retriever("imagenet", imagenet.build_imagenet_retriever, inputs=PIXELS)
register_retriever("clip", clip.build_clip_retriever, inputs=PIXELS)
register_retriever("regions", regions.build_region_retriever, inputs=PIXELS)
