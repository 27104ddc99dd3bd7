"""The one registry behaviour of every extension point (agents, suites, retrievers, LM backends, image encoders): a
name is registered once, `replace=True` replaces it in its place, an unknown name is refused in one line naming the
registered ones; and which of several backends serves an `lm` setting."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import torch

from shelm.agents import AGENTS, get_agent_spec, register_agent, unregister_agent
from shelm.cli import main
from shelm.config import TrainConfig
from shelm.envs import Suite, register_suite, unregister_suite
from shelm.envs.registry import SUITES
from shelm.errors import ShelmError
from shelm.memory.backends import BACKENDS, asked_in_order, backend_for, register_backend, unregister_backend
from shelm.memory.helmv2 import IMAGE_ENCODERS, build_image_encoder, register_image_encoder
from shelm.memory.retrievers import PIXELS, RETRIEVERS, register_retriever, retriever_inputs
from shelm.registry import AlreadyRegistered, Registry


def test_a_registry_keeps_names_in_order_refuses_a_second_registration_and_replaces_in_place():
    registry: Registry[int] = Registry("widget", listed_by="`widgets`")
    registry.register("a", 1)
    registry.register("b", 2)
    with pytest.raises(AlreadyRegistered) as refused:
        registry.register("a", 3)
    assert str(refused.value) == (
        "widget 'a' is already registered; pick another name, or pass replace=True to replace it"
    )
    assert isinstance(refused.value, ShelmError)  # the command line prints it in one line and exits 2
    assert registry.get("a") == 1
    registry.register("a", 3, replace=True)
    assert registry.items() == [("a", 3), ("b", 2)] and registry["a"] == 3  # in the old one's place
    assert "a" in registry and "c" not in registry and list(registry) == ["a", "b"] and len(registry) == 2
    with pytest.raises(ShelmError) as unknown:
        registry.get("c")
    assert str(unknown.value) == "unknown widget 'c': expected one of a, b (`widgets`)"
    assert registry.unregister("a") == 3 and registry.names() == ["b"]
    with pytest.raises(ShelmError, match=r"^unknown widget 'a': expected one of b"):
        registry.unregister("a")


def test_the_unknown_name_line_begins_with_how_the_user_asked_and_offers_the_settings_other_values():
    registry: Registry[int] = Registry("gadget", also_accepted=("auto",))
    registry.register("x", 1)
    with pytest.raises(ShelmError) as unknown:
        registry.get("y", asked="--set gadget=y")
    assert str(unknown.value) == "--set gadget=y: expected one of auto, x"


class Kind(NamedTuple):
    """One registry as its module offers it."""

    registry: Registry[Any]
    register: Callable[..., None]
    """(name, replace=False): register a fresh thing as `name`."""
    forget: Callable[[str], Any]
    ask: Callable[[str], Any]
    """What shelm asks the registry by name (a setting's value, a listing's name)."""
    unknown: str
    """How the line refusing the unknown name 'nothing-such' begins."""


def _agent(name: str) -> Any:
    return dataclasses.replace(get_agent_spec("cnn"), name=name)


def _suite(name: str) -> Suite:
    return Suite(name, handles=lambda env_id: False, ids=list)


class _Backend:
    def __init__(self, name: str, prefix: str = "test-backend:"):
        self.name = name
        self.prefix = prefix

    def handles(self, lm: str) -> bool:
        return lm.startswith(self.prefix)


KINDS = {
    "agent": Kind(
        AGENTS,
        lambda name, replace=False: register_agent(_agent(name), replace=replace),
        unregister_agent,
        get_agent_spec,
        "unknown agent 'nothing-such': expected one of cnn, lstm",
    ),
    "suite": Kind(
        SUITES,
        lambda name, replace=False: register_suite(_suite(name), replace=replace),
        unregister_suite,
        unregister_suite,
        "unknown suite 'nothing-such': expected one of minigrid",
    ),
    "retriever": Kind(
        RETRIEVERS,
        lambda name, replace=False: register_retriever(name, lambda *a: None, inputs=PIXELS, replace=replace),
        RETRIEVERS.unregister,
        retriever_inputs,
        "retriever=nothing-such: expected one of auto, symbolic, imagenet, clip, regions",
    ),
    "backend": Kind(
        BACKENDS,
        lambda name, replace=False: register_backend(_Backend(name), replace=replace),
        lambda name: unregister_backend(BACKENDS.get(name)),
        BACKENDS.get,
        "unknown language-model backend 'nothing-such': expected one of Hugging Face, TransformerXL",
    ),
    "image encoder": Kind(
        IMAGE_ENCODERS,
        lambda name, replace=False: register_image_encoder(name, lambda config, device: None, replace=replace),
        IMAGE_ENCODERS.unregister,
        lambda name: build_image_encoder(TrainConfig(image_encoder=name), torch.device("cpu")),
        "--set image_encoder=nothing-such: expected one of auto, imagenet, clip",
    ),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """One registry's kind; whatever a test registers as 'test-thing' is forgotten after it."""
    yield request.param
    if "test-thing" in KINDS[request.param].registry:
        KINDS[request.param].forget("test-thing")


def test_every_registry_refuses_a_name_registered_twice_in_one_line(kind):
    registry, register = KINDS[kind].registry, KINDS[kind].register
    names = registry.names()
    register("test-thing")
    first = registry.get("test-thing")
    with pytest.raises(AlreadyRegistered, match=r"^[a-z -]+ 'test-thing' is already registered; .*replace=True"):
        register("test-thing")
    assert registry.get("test-thing") is first and registry.names() == [*names, "test-thing"]


def test_every_registry_replaces_a_name_in_its_place_when_asked(kind):
    registry, register = KINDS[kind].registry, KINDS[kind].register
    register("test-thing")
    first = registry.get("test-thing")
    names = registry.names()
    register("test-thing", replace=True)
    assert registry.get("test-thing") is not first and registry.names() == names


def test_every_registry_names_the_registered_ones_for_an_unknown_name(kind):
    with pytest.raises(ShelmError) as unknown:
        KINDS[kind].ask("nothing-such")
    assert str(unknown.value).startswith(KINDS[kind].unknown) and "\n" not in str(unknown.value)


def test_an_unknown_agent_on_the_command_line_is_one_line_naming_the_agents(capsys):
    assert main(["train", "--env", "MiniGrid-Empty-5x5-v0", "--agent", "nothing-such"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown agent 'nothing-such': expected one of cnn, lstm, trxl, helm" in err
    assert err.rstrip().endswith("(`shelm agents`)")


@pytest.fixture
def two_backends() -> Iterator[tuple[_Backend, _Backend]]:
    """Two backends that both serve lm=test-backend:..., the second registered last."""
    older, newer = _Backend("older"), _Backend("newer")
    register_backend(older)
    register_backend(newer)
    yield older, newer
    for name in ("older", "newer"):
        if name in BACKENDS:
            BACKENDS.unregister(name)


def test_the_backend_registered_last_serves_the_settings_both_handle(two_backends):
    older, newer = two_backends
    assert [b.name for b in asked_in_order()] == ["newer", "older", "TransformerXL", "Hugging Face"]
    assert backend_for("test-backend:x") is newer and asked_in_order()[1] is older
    assert backend_for("transfo-xl:/some/dir").name == "TransformerXL"  # the newer ones do not handle it
    assert backend_for("smollm2").name == "Hugging Face"  # the catch-all, registered first, asked last
    # Replacing keeps the place: the replaced older backend is still asked after the newer one.
    replacement = _Backend("older")
    register_backend(replacement, replace=True)
    assert backend_for("test-backend:x") is newer and asked_in_order()[1] is replacement
    unregister_backend(newer)
    assert backend_for("test-backend:x") is replacement


def test_a_backend_is_unregistered_only_by_the_object_registered(two_backends):
    older, _ = two_backends
    with pytest.raises(ShelmError, match=r"^language-model backend 'older' is registered as another object"):
        unregister_backend(_Backend("older"))
    assert BACKENDS.get("older") is older
