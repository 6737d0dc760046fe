"""A writer probe: sequence-numbered inserts at a fixed cadence, each its own
transaction, every request and acknowledgement time on the monotonic clock.

An acknowledged write is one whose COMMIT returned; it must survive any
failover in synchronous mode. A write whose outcome is unknown (the
connection broke after the request was sent) may or may not be there.

Connection details that decide the measurement's resolution (reference
postgres-patroni.md §9): libpq raises any ``connect_timeout`` below 2 s to 2 s,
so the probe bounds each connect and each insert with its own deadline
(asyncio), and sets ``tcp_user_timeout`` and keepalives so that a connection
to a vanished primary fails in about a second instead of hanging in TCP
retransmission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import psycopg

# An op timeout cancels the statement as a client with a statement timeout
# would; psycopg then logs a warning per cancelled write, which is noise here.
logging.getLogger("psycopg").setLevel(logging.ERROR)

TABLE = "cmlab_writes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (writer text NOT NULL, seq bigint NOT NULL, node text, PRIMARY KEY (writer, seq))"
#: The server names itself through the custom setting cmlab.node, which
#: engines set on each database node; '' where they do not.
INSERT = f"INSERT INTO {TABLE} (writer, seq, node) VALUES (%s, %s, current_setting('cmlab.node', true)) RETURNING node"


@dataclass(frozen=True)
class Write:
    """One write attempt.

    :param sent: monotonic time the attempt began, seconds.
    :param acked: monotonic time the commit returned, seconds; None if not acknowledged.
    :param node: the node that acknowledged it (its ``cmlab.node`` setting).
    :param error: why it failed, when it did.
    :param unknown: the request may have reached the server (outcome unknown).
    """

    seq: int
    sent: float
    acked: float | None
    node: str | None = None
    error: str | None = None
    unknown: bool = False


class Writer:
    """Writes ``seq = 1, 2, ...`` through ``dsn`` every ``interval_s`` seconds
    in a background thread, until :meth:`stop`.

    :param dsn: libpq connection string (e.g. to the VIP).
    :param name: the writer's name, stored with each row.
    :param interval_s: cadence, seconds (the issue asks for <= 0.05).
    :param connect_timeout_s: deadline of one connection attempt, seconds.
    :param op_timeout_s: deadline of one insert, seconds.
    """

    def __init__(self, dsn: str, name: str = "w1", interval_s: float = 0.02,
                 connect_timeout_s: float = 0.5, op_timeout_s: float = 1.0, create_table: bool = True) -> None:
        self.dsn = dsn
        self.name = name
        self.create_table = create_table
        #: CPU seconds the writer's thread used (set when it ends).
        self.cpu_s = 0.0
        self.interval_s = interval_s
        self.connect_timeout_s = connect_timeout_s
        self.op_timeout_s = op_timeout_s
        self.writes: list[Write] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        def main() -> None:
            asyncio.run(self._run())
            self.cpu_s = time.thread_time()

        self._thread = threading.Thread(target=main, name=f"writer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop writing and wait for the thread (at most ``timeout_s`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    async def _connect(self) -> psycopg.AsyncConnection:
        async with asyncio.timeout(self.connect_timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=2, tcp_user_timeout=1000,
                keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
                application_name=f"cmlab-writer-{self.name}",
            )
        if self.create_table:
            await conn.execute(CREATE)
        return conn

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        seq = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            sent = time.monotonic()
            requested = False
            try:
                if conn is None:
                    conn = await self._connect()
                requested = True
                # asyncio.timeout, not wait_for: no task per write (the probe's CPU budget).
                async with asyncio.timeout(self.op_timeout_s):
                    cur = await conn.execute(INSERT, (self.name, seq), prepare=True)
                    row = await cur.fetchone()
                self.writes.append(Write(seq, sent, time.monotonic(), node=(row[0] if row else None) or None))
            except (psycopg.Error, OSError, asyncio.TimeoutError) as exc:
                # The server answered with an error (a standby: read-only): the write
                # surely failed and the connection is still good. Anything else
                # (timeout, broken connection) leaves the outcome unknown.
                answered = getattr(exc, "sqlstate", None) is not None
                self.writes.append(Write(seq, sent, None, error=f"{type(exc).__name__}: {exc}".strip()[:200],
                                         unknown=requested and not answered))
                if conn is not None and (not answered or conn.broken):
                    with contextlib.suppress(Exception):
                        conn.pgconn.finish()  # drop it without a round trip to a dead server
                    conn = None
            next_t = max(next_t + self.interval_s, time.monotonic())
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # ---- reading the record --------------------------------------------------------------

    def acked(self) -> list[Write]:
        return [w for w in self.writes if w.acked is not None]

    def last_ack_before(self, t: float) -> Write | None:
        """The last write acknowledged at or before monotonic time ``t``."""
        return next((w for w in reversed(self.acked()) if w.acked is not None and w.acked <= t), None)

    def first_ack_after(self, t: float) -> Write | None:
        """The first write acknowledged after monotonic time ``t``."""
        return next((w for w in self.acked() if w.acked is not None and w.acked > t), None)

    def largest_gap(self) -> float:
        """Largest time between consecutive acknowledgements, seconds."""
        times = [w.acked for w in self.acked() if w.acked is not None]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def stored_seqs(dsn: str, writer: str) -> set[int]:
    """The sequence numbers of ``writer`` stored on the server at ``dsn``."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return {r[0] for r in conn.execute(f"SELECT seq FROM {TABLE} WHERE writer = %s", (writer,))}


def stored_writes(dsn: str) -> set[tuple[str, int]]:
    """Every ``(writer, seq)`` stored on the server at ``dsn``."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return {(r[0], r[1]) for r in conn.execute(f"SELECT writer, seq FROM {TABLE}")}


def create_table(dsn: str) -> None:
    """Create the writers' table (on the primary; it replicates)."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        conn.execute(CREATE)


def reset_table(dsn: str) -> None:
    """Empty the writers' table, so a trial reads only its own rows."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        conn.execute(CREATE)
        conn.execute(f"TRUNCATE {TABLE}")
