"""Where each SHELM retriever's words come from, as registered, and how labels name it: an oracle (words read from
the environment's state) is marked as one wherever a result is labelled."""

from __future__ import annotations

import pytest

from shelm.agents import get_agent_spec, resolve_config
from shelm.errors import ShelmError
from shelm.memory.retrievers import (
    ORACLE,
    PIXELS,
    RETRIEVERS,
    register_retriever,
    retriever_inputs,
    retriever_is_oracle,
    retriever_label,
)

BUILT_IN = {"symbolic", "imagenet", "clip", "regions"}


def test_every_built_in_retriever_says_where_its_words_come_from():
    assert set(RETRIEVERS) >= BUILT_IN
    for name in BUILT_IN:
        inputs = retriever_inputs(name)
        assert isinstance(inputs, str) and inputs.strip() and "\n" not in inputs, name
    assert retriever_inputs("symbolic") == "oracle: object names from the environment's state"
    assert retriever_is_oracle("symbolic") and retriever_label("symbolic") == "symbolic oracle"
    for name in ("regions", "imagenet", "clip"):  # the ones that read pixels
        assert retriever_inputs(name) == PIXELS and not retriever_is_oracle(name) and retriever_label(name) == name


def test_a_symbolic_shelm_label_marks_the_oracle_and_a_pixel_one_does_not():
    shelm = get_agent_spec("shelm")
    config, _ = resolve_config("MiniGrid-MemoryS11-v0", "shelm", {"lm_layers": 2})  # auto: symbolic on MiniGrid
    assert config.retriever == "symbolic" and shelm.label(config) == "shelm (symbolic oracle, lm_layers=2)"
    config, _ = resolve_config("MiniGrid-MemoryS11-v0", "shelm", {"lm_layers": 2, "retriever": "regions"})
    assert shelm.label(config) == "shelm (regions, lm_layers=2)"
    config, _ = resolve_config("shelm/RandomMaze-v0", "shelm", {"fusion": "concat"})  # auto: words from pixels
    assert shelm.label(config) == "shelm (regions, fusion=concat)"


@pytest.fixture
def cue_reader():
    """An oracle registered from outside: the label asks its registered inputs, not its name."""
    register_retriever("cue-reader", lambda *args: None, inputs=f"{ORACLE}the episode's cue from the environment")
    yield
    RETRIEVERS.unregister("cue-reader")


def test_an_oracle_registered_from_outside_is_labelled_as_one(cue_reader):
    config, _ = resolve_config("MiniGrid-MemoryS11-v0", "shelm", {"retriever": "cue-reader"})
    assert retriever_is_oracle("cue-reader") and get_agent_spec("shelm").label(config) == "shelm (cue-reader oracle)"


def test_a_retriever_must_say_where_its_words_come_from():
    with pytest.raises(TypeError):
        register_retriever("mute", lambda *args: None)  # type: ignore[call-arg]
    with pytest.raises(ShelmError, match=r"is not a one-line description; give e\.g\. inputs='pixels'"):
        register_retriever("mute", lambda *args: None, inputs=" ")
    assert "mute" not in RETRIEVERS
    with pytest.raises(ShelmError, match="retriever=mute: expected one of auto, "):
        retriever_inputs("mute")
    assert retriever_label("mute") == "mute"  # a run made with a retriever registered elsewhere keeps its name
