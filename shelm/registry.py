"""One kind of registry for every extension point: agents, environment suites, SHELM retrievers, language-model
backends and HELMv2's image encoders are each a `Registry` of things by name.

Every registry behaves the same way: a name is registered once, and registering it again is refused in one line
(`AlreadyRegistered`) unless the caller asks to replace it (`replace=True`, which keeps the name's place in the
registration order); asking for a name nobody registered is refused in one line that names the registered ones.
Names are kept in registration order, which is the order listings show and the order registries that are searched
(suites, backends) are asked in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from shelm.errors import ShelmError

T = TypeVar("T")


class AlreadyRegistered(ShelmError):
    """A name registered a second time without `replace=True`."""


class Registry(Generic[T]):
    """Things of one kind by name, in registration order."""

    def __init__(self, kind: str, *, listed_by: str = "", also_accepted: tuple[str, ...] = ()):
        """`kind` names one thing in messages ('agent'); `listed_by` is the command that lists them ('`shelm
        agents`'); `also_accepted` are values the matching setting takes besides the names ('auto'), which the
        unknown-name line offers first."""
        self.kind = kind
        self.listed_by = listed_by
        self.also_accepted = also_accepted
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, replace: bool = False) -> None:
        """Make `item` known as `name`; a name already registered is refused unless `replace`, which puts `item` in
        the old one's place."""
        if name in self._items and not replace:
            raise AlreadyRegistered(
                f"{self.kind} '{name}' is already registered; pick another name, or pass replace=True to replace it"
            )
        self._items[name] = item

    def unregister(self, name: str) -> T:
        """Forget the thing registered as `name` and return it."""
        item = self.get(name)
        del self._items[name]
        return item

    def get(self, name: str, *, asked: str = "") -> T:
        """The thing registered as `name`; else one line naming the registered ones. `asked` is how the user named
        it (e.g. '--set retriever=word2vec'), which then begins the line."""
        if name in self._items:
            return self._items[name]
        choices = ", ".join((*self.also_accepted, *self._items))
        listed = f" ({self.listed_by})" if self.listed_by else ""
        raise ShelmError(f"{asked or f'unknown {self.kind} {name!r}'}: expected one of {choices}{listed}")

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, thing) pairs, in registration order."""
        return list(self._items.items())

    def values(self) -> list[T]:
        """The registered things, in registration order."""
        return list(self._items.values())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
