"""Engine ``postgres-patroni``; see :mod:`.engine`."""

from cmlab.engines.postgres_patroni.engine import PostgresPatroni

__all__ = ["PostgresPatroni"]
