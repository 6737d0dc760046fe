"""The registry of engines: an object the lab receives, not a global.

Like containerlab's ``NodeRegistry``: engines are listed explicitly in
:func:`default_registry`, a duplicate name is an error, and an unknown name
fails listing the known ones. A test can build a registry with only its own
fake engine. An engine is made (and its module imported) when it is first
asked for: a command on a Patroni lab does not load openGauss's engine.
"""

from __future__ import annotations

from collections.abc import Callable

from cmlab.engines.base import Engine
from cmlab.errors import UnknownEngine


class EngineRegistry:
    def __init__(self) -> None:
        #: Every name and alias -> the engine's own name.
        self._names: dict[str, str] = {}
        self._makers: dict[str, Callable[[], Engine]] = {}
        self._made: dict[str, Engine] = {}

    def register(self, engine: Engine, aliases: tuple[str, ...] = ()) -> None:
        """Add an engine under its name and aliases.

        :raises ValueError: a name is already taken.
        """
        self.register_lazy(engine.name, lambda: engine, aliases)

    def register_lazy(self, name: str, make: Callable[[], Engine], aliases: tuple[str, ...] = ()) -> None:
        """Add an engine that ``make`` builds when it is first asked for.

        :raises ValueError: a name is already taken.
        """
        for n in (name, *aliases):
            if n in self._names:
                raise ValueError(f"engine name '{n}' is registered twice")
            self._names[n] = name
        self._makers[name] = make

    def get(self, name: str) -> Engine:
        """The engine called ``name`` (or one of its aliases).

        :raises UnknownEngine: (a ``KeyError``) with a message naming the known engines.
        """
        try:
            own = self._names[name]
        except KeyError:
            raise UnknownEngine(f"unknown engine '{name}' (known: {', '.join(self.names())})") from None
        if own not in self._made:
            self._made[own] = self._makers[own]()
        return self._made[own]

    def names(self) -> list[str]:
        return sorted(set(self._names.values()))


def _postgres_patroni() -> Engine:
    from cmlab.engines.postgres_patroni import PostgresPatroni

    return PostgresPatroni()


def _opengauss_cm() -> Engine:
    from cmlab.engines.opengauss_cm import OpenGaussCm

    return OpenGaussCm()


def default_registry() -> EngineRegistry:
    """Every engine cmlab ships, registered by hand in one place."""
    registry = EngineRegistry()
    registry.register_lazy("postgres-patroni", _postgres_patroni, aliases=("patroni",))
    registry.register_lazy("opengauss-cm", _opengauss_cm, aliases=("ogcm",))
    return registry
