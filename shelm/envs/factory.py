"""Environments a user builds in Python: a factory (any callable returning a gymnasium env) given to `shelm.train` or
`shelm.load` instead of a registered id.

A factory's env gets the id `factory:MODULE.QUALNAME` (`factory_id`), which is what a run's config records, and is
built by the `SUITE` below through `shelm.envs.make_env` like every other suite's: its Dict observation reduced to
the image, its texts copied into the info, its spaces checked, its frames preprocessed, its episodes scored by the
default success rule (the env's `is_success` flag, else a positive return). The factory itself cannot be written
into a run, so it is known only while the Python call that was given it runs (`factory_given`); any other process
(`shelm eval`, `shelm train --resume`) is told, in one line, to pass the factory again from Python. The one
exception is a subprocess that multiprocessing started (asynchronous vectorization's workers, where they are spawned
rather than forked), which finds the factory by its importable name: that is why `vectorization=async` takes only
factories that pickle sends by reference (`check_async`).
"""

from __future__ import annotations

import importlib
import inspect
import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym

from shelm.envs.registry import Suite
from shelm.errors import ShelmError

FACTORY_PREFIX = "factory:"
EnvFactory = Callable[..., gym.Env]
"""A callable returning one gymnasium env; it may take constructor keywords (the `env_kwargs` setting) and
`render_mode`."""

# The factories of the Python calls running now, by env id.
_GIVEN: dict[str, EnvFactory] = {}


def factory_name(factory: EnvFactory) -> str:
    """'MODULE.QUALNAME' of a function or class; of the wrapped function for a `functools.partial`; of the type for
    any other callable object."""
    target = getattr(factory, "func", factory)  # functools.partial
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)):
        target = type(target)
    return f"{target.__module__}.{target.__qualname__}"


def factory_id(factory: EnvFactory) -> str:
    """The env id a run made from `factory` records, e.g. 'factory:my_package.envs.make_cue_env'."""
    if isinstance(factory, gym.Env):
        raise ShelmError(
            f"env {factory!r} is an env object; shelm makes its own copies (one per n_envs), so give the callable "
            "that makes one, e.g. lambda: MyEnv() (a module-level function or class for vectorization=async)"
        )
    if not callable(factory):
        raise ShelmError(
            f"env {factory!r}: give a registered env id (`shelm envs`) or a callable that returns a gymnasium env"
        )
    return FACTORY_PREFIX + factory_name(factory)


def is_factory_id(env_id: str) -> bool:
    """Whether `env_id` names an env made by a Python factory."""
    return env_id.startswith(FACTORY_PREFIX)


def short_name(env_id: str) -> str:
    """The factory's own name in `env_id`, as a user would write it in Python: 'make_cue_env'."""
    return env_id.removeprefix(FACTORY_PREFIX).rpartition(".")[2]


def not_given(env_id: str, run_dir: str = "RUN_DIR") -> str:
    """The one line telling that a run's env needs its factory, and the Python calls that take it."""
    name = short_name(env_id)
    return (
        f"this run's env was made by a Python factory ({env_id.removeprefix(FACTORY_PREFIX)}), which a run cannot "
        f"store: continue it from Python with shelm.train({name}, resume='{run_dir}'), play or evaluate it with "
        f"shelm.load('{run_dir}', env={name})"
    )


@contextmanager
def factory_given(factory: EnvFactory) -> Iterator[str]:
    """Makes `factory` build its env id (returned) for every function of `shelm.envs` while the block runs."""
    env_id = factory_id(factory)
    previous = _GIVEN.get(env_id)
    _GIVEN[env_id] = factory
    try:
        yield env_id
    finally:
        if previous is None:
            _GIVEN.pop(env_id, None)
        else:
            _GIVEN[env_id] = previous


def _by_name(env_id: str) -> Any:
    """The object the id's MODULE.QUALNAME names, or None when nothing importable has that name."""
    dotted = env_id.removeprefix(FACTORY_PREFIX)
    if "<" in dotted:  # '<lambda>', '<locals>': nothing importable has such a name
        return None
    names = dotted.split(".")
    for cut in range(len(names) - 1, 0, -1):  # the longest importable module: a method is MODULE.CLASS.method
        try:
            found: Any = importlib.import_module(".".join(names[:cut]))
        except ImportError:
            continue
        except Exception:  # a user's module may fail to import in any way; then the factory has no usable name
            return None
        for attribute in names[cut:]:
            found = getattr(found, attribute, None)
        return found
    return None


def check_async(factory: EnvFactory) -> None:
    """Refuse, in one line, a factory that `vectorization=async` could not send to its subprocesses: they receive it
    pickled, that is by its importable name, so it must be a module-level function or class."""
    name = factory_name(factory)
    try:
        pickle.dumps(factory)
        sendable = _by_name(factory_id(factory)) is factory
    except (pickle.PicklingError, TypeError, AttributeError):
        sendable = False
    if not sendable:
        raise ShelmError(
            f"vectorization=async builds the envs in subprocesses, which need the factory pickled by its importable "
            f"name; {name} is not (a lambda, a nested function or an object): give a module-level function or class, "
            "or set vectorization=sync"
        )


def factory_of(env_id: str) -> EnvFactory:
    """The factory of `env_id`: the one given to the running Python call; in a subprocess multiprocessing started
    (asynchronous vectorization's workers), the one its name imports. Anywhere else, a one-line refusal saying how
    to pass it again."""
    factory = _GIVEN.get(env_id)
    if factory is None and multiprocessing.parent_process() is not None:
        found = _by_name(env_id)
        factory = found if callable(found) else None
    if factory is None:
        raise ShelmError(not_given(env_id))
    return factory


def make(env_id: str, tile_size: int, render_mode: str | None, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """`Suite.make` of factories: the factory called with the env keywords, and `render_mode` where its signature
    takes one (`tile_size` is MiniGrid's and does not apply)."""
    factory = factory_of(env_id)
    kwargs = dict(env_kwargs or {})
    if render_mode is not None and _takes(factory, "render_mode"):
        kwargs["render_mode"] = render_mode
    try:
        env = factory(**kwargs)
    except TypeError as exc:
        if not env_kwargs or not str(exc):
            raise
        given = ",".join(f"{key}={value}" for key, value in env_kwargs.items())
        raise ShelmError(
            f"--env-kwargs {given}: factory {short_name(env_id)} refuses them ({exc}); give keywords it takes"
        ) from None
    if not isinstance(env, gym.Env):
        raise ShelmError(f"env factory {short_name(env_id)} returned {type(env).__name__}, not a gymnasium.Env")
    return env


def _takes(factory: EnvFactory, keyword: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


SUITE = Suite(
    "factory",
    handles=is_factory_id,
    ids=lambda: sorted(_GIVEN),
    make=make,
    install_hint="an env made by a Python callable given to shelm.train or shelm.load",
)
