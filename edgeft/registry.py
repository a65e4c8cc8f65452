"""A registry of named things (each paradigm's schemes): registered once, in presentation
order, read through a read-only view, names checked at the door."""

from __future__ import annotations

from types import MappingProxyType

from edgeft.errors import InputError


class Registry:
    """Name -> item, in registration order. ``kind`` is the item's type (what ``register``
    accepts; ``what`` names it in errors)."""

    def __init__(self, kind: type, what: str):
        self.kind, self.what = kind, what
        self.items: dict = {}
        self.view = MappingProxyType(self.items)

    def register(self, item):
        """Add ``item`` (its ``name``); a name is registered once."""
        if not isinstance(item, self.kind):
            raise InputError("scheme", item, f"an {self.what}")
        if item.name in self.items:
            raise InputError("name", item.name, "a name not registered yet")
        self.items[item.name] = item
        return item

    def check(self, names, field: str = "schemes") -> tuple[str, ...]:
        """``names`` as a tuple if it is a non-empty collection of registered names, else
        :class:`InputError` naming ``field``."""
        if isinstance(names, str):
            names = (names,)
        try:
            names = tuple(names)
        except TypeError:
            raise InputError(field, names, f"names among {', '.join(self.items)}") from None
        if not names or any(not isinstance(n, str) or n not in self.items for n in names):
            raise InputError(field, ",".join(map(str, names)) or names,
                             f"names among {', '.join(self.items)}")
        return names
