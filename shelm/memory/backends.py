"""The language-model backends: which one serves an `lm` setting.

Backends are registered by name, and a name once (`replace=True` replaces a backend in its place). To serve an
`lm` setting they are asked newest first, the one registered last first, and the first whose `handles(lm)` says
yes serves it: a backend registered later takes precedence over the ones before it for the settings both handle,
so the Hugging Face catch-all is registered first and a backend for a source prefix after it. Adding a backend is
one module implementing `shelm.memory.lm_backend.LanguageModelBackend` plus one `register_backend` line below.
"""

from __future__ import annotations

from shelm.errors import ShelmError
from shelm.memory.huggingface import HuggingFaceBackend
from shelm.memory.lm_backend import LanguageModelBackend
from shelm.memory.transfo_xl import TransfoXLBackend
from shelm.registry import Registry

BACKENDS: Registry[LanguageModelBackend] = Registry("language-model backend")
"""The registered backends by name, in registration order (`asked_in_order` gives the order they are asked in)."""


def register_backend(backend: LanguageModelBackend, *, replace: bool = False) -> None:
    """Ask `backend` (by its `name`) before every backend registered so far; a name already registered is refused
    unless `replace`, which puts `backend` in the old one's place in the order."""
    BACKENDS.register(backend.name, backend, replace=replace)


def unregister_backend(backend: LanguageModelBackend) -> None:
    """Stop asking `backend` (e.g. a test's own)."""
    if BACKENDS.get(backend.name) is not backend:
        raise ShelmError(f"language-model backend '{backend.name}' is registered as another object; nothing removed")
    BACKENDS.unregister(backend.name)


def asked_in_order() -> list[LanguageModelBackend]:
    """The backends in the order `backend_for` asks them: the one registered last first."""
    return BACKENDS.values()[::-1]


def backend_for(lm: str) -> LanguageModelBackend:
    """The backend that serves the `lm` setting: the newest registered one that handles it."""
    for backend in asked_in_order():
        if backend.handles(lm):
            return backend
    raise ShelmError(f"lm={lm!r}: no language-model backend serves it")


register_backend(HuggingFaceBackend())  # every other lm: the packaged smollm2, model directories, hub ids
register_backend(TransfoXLBackend())  # lm=transfo-xl:DIR
