"""The registry of engines: an object the lab receives, not a global.

Like containerlab's ``NodeRegistry``: engines are listed explicitly in
:func:`default_registry`, a duplicate name is an error, and an unknown name
fails listing the known ones. A test can build a registry with only its own
fake engine.
"""

from __future__ import annotations

from cmlab.errors import UnknownEngine
from cmlab.engines.base import Engine


class EngineRegistry:
    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    def register(self, engine: Engine, aliases: tuple[str, ...] = ()) -> None:
        """Add an engine under its name and aliases.

        :raises ValueError: a name is already taken.
        """
        for name in (engine.name, *aliases):
            if name in self._engines:
                raise ValueError(f"engine name '{name}' is registered twice")
            self._engines[name] = engine

    def get(self, name: str) -> Engine:
        """The engine called ``name``.

        :raises UnknownEngine: (a ``KeyError``) with a message naming the known engines.
        """
        try:
            return self._engines[name]
        except KeyError:
            raise UnknownEngine(f"unknown engine '{name}' (known: {', '.join(self.names())})") from None

    def names(self) -> list[str]:
        return sorted({e.name for e in self._engines.values()})


def default_registry() -> EngineRegistry:
    """Every engine cmlab ships, registered by hand in one place."""
    from cmlab.engines.opengauss_cm import OpenGaussCm
    from cmlab.engines.postgres_patroni import PostgresPatroni

    registry = EngineRegistry()
    registry.register(PostgresPatroni(), aliases=("patroni",))
    registry.register(OpenGaussCm(), aliases=("ogcm",))
    return registry
