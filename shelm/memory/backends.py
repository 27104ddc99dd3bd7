"""The language-model backends: which one serves an `lm` setting.

Backends are asked in order, the one registered last first, and the first whose `handles(lm)` says yes serves
it; so a backend for a source prefix is registered after the Hugging Face catch-all. Adding a backend is one
module implementing `shelm.memory.lm_backend.LanguageModelBackend` plus one `register_backend` line below.
"""

from __future__ import annotations

from shelm.errors import ShelmError
from shelm.memory.huggingface import HuggingFaceBackend
from shelm.memory.lm_backend import LanguageModelBackend
from shelm.memory.transfo_xl import TransfoXLBackend

BACKENDS: list[LanguageModelBackend] = []
"""The registered backends in the order they are asked."""


def register_backend(backend: LanguageModelBackend) -> None:
    """Ask `backend` before every backend registered so far."""
    BACKENDS.insert(0, backend)


def unregister_backend(backend: LanguageModelBackend) -> None:
    """Stop asking `backend` (e.g. a test's own)."""
    BACKENDS.remove(backend)


def backend_for(lm: str) -> LanguageModelBackend:
    """The backend that serves the `lm` setting."""
    for backend in BACKENDS:
        if backend.handles(lm):
            return backend
    raise ShelmError(f"lm={lm!r}: no language-model backend serves it")


register_backend(HuggingFaceBackend())  # every other lm: the packaged smollm2, model directories, hub ids
register_backend(TransfoXLBackend())  # lm=transfo-xl:DIR
