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
import threading
import time
from dataclasses import dataclass

import psycopg

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
                 connect_timeout_s: float = 0.5, op_timeout_s: float = 1.0) -> None:
        self.dsn = dsn
        self.name = name
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
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name=f"writer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop writing and wait for the thread (at most ``timeout_s`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=2, tcp_user_timeout=1000,
                keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
                application_name=f"cmlab-writer-{self.name}",
            ),
            self.connect_timeout_s,
        )
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
                cur = await asyncio.wait_for(conn.execute(INSERT, (self.name, seq)), self.op_timeout_s)
                row = await cur.fetchone()
                self.writes.append(Write(seq, sent, time.monotonic(), node=(row[0] if row else None) or None))
            except (psycopg.Error, OSError, asyncio.TimeoutError) as exc:
                self.writes.append(Write(seq, sent, None, error=f"{type(exc).__name__}: {exc}".strip()[:200], unknown=requested))
                if conn is not None:
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
