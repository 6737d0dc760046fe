"""A writer probe: sequence-numbered inserts at a fixed cadence, each its own
transaction, every request and acknowledgement time on the monotonic clock.

An acknowledged write is one whose COMMIT returned; it must survive any
failover in synchronous mode. A write whose outcome is unknown (the
connection broke after the request was sent) may or may not be there.

How the deadlines are kept (they decide the measurement's resolution,
reference postgres-patroni.md §9), at a small CPU cost (plain blocking
psycopg in one thread per writer):

* connect: libpq raises any ``connect_timeout`` below 2 s to 2 s, so a plain
  TCP connect with its own deadline (``connect_timeout_s``) goes first; only
  when the server answers does psycopg connect (at once, then);
* each insert: the :class:`Watchdog` shuts the socket down when the insert
  overruns ``op_timeout_s``; the blocked call returns with a broken
  connection, the outcome is unknown, and no cancel request reaches the
  server (a cancel would end a commit's wait for its sync standby and commit
  locally);
* ``tcp_user_timeout`` and keepalives make a connection to a vanished
  primary fail in about a second instead of hanging in TCP retransmission.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

TABLE = "cmlab_writes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (writer text NOT NULL, seq bigint NOT NULL, node text, PRIMARY KEY (writer, seq))"
#: How the server names itself in the row (the engine may give another SQL
#: expression: :attr:`cmlab.engines.base.Engine.node_identity_sql`).
NODE_IDENTITY = "current_setting('cmlab.node', true)"


def insert_sql(node_identity: str = NODE_IDENTITY) -> str:
    return f"INSERT INTO {TABLE} (writer, seq, node) VALUES (%s, %s, {node_identity}) RETURNING node"


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


class Watchdog:
    """Shuts down the socket of a call that overran its deadline. One thread
    serves every writer and looks every ``TICK_S`` seconds (deadlines are a
    second long, so a tenth of a second late is fine, and arming a deadline
    costs no wake-up)."""

    TICK_S = 0.1
    _shared: "Watchdog | None" = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, int]] = {}
        threading.Thread(target=self._run, name="writer-watchdog", daemon=True).start()

    @classmethod
    def shared(cls) -> "Watchdog":
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @contextmanager
    def deadline(self, fd: int, seconds: float) -> Iterator[None]:
        key = threading.get_ident()
        self._armed[key] = (time.monotonic() + seconds, fd)  # one dict store: atomic under the GIL
        try:
            yield
        finally:
            self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            for key, (at, fd) in list(self._armed.items()):
                if at <= now and self._armed.pop(key, None) is not None:
                    with suppress(OSError):
                        s = socket.socket(fileno=os.dup(fd))
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()


class Writer:
    """Writes ``seq = 1, 2, ...`` through ``dsn`` every ``interval_s`` seconds
    in a background thread, until :meth:`stop`.

    :param dsn: libpq connection string (e.g. to the VIP).
    :param name: the writer's name, stored with each row.
    :param interval_s: cadence, seconds (the issue asks for <= 0.05).
    :param connect_timeout_s: deadline of one connection attempt, seconds.
    :param op_timeout_s: deadline of one insert, seconds.
    :param create_table: create the table on each new connection.
    :param node_identity: SQL expression naming the server (the engine's).
    """

    def __init__(self, dsn: str, name: str = "w1", interval_s: float = 0.02,
                 connect_timeout_s: float = 0.5, op_timeout_s: float = 1.0, create_table: bool = True,
                 node_identity: str = NODE_IDENTITY) -> None:
        self._insert = insert_sql(node_identity)
        self.dsn = dsn
        self.name = name
        self.interval_s = interval_s
        self.connect_timeout_s = connect_timeout_s
        self.op_timeout_s = op_timeout_s
        self.create_table = create_table
        info = conninfo_to_dict(dsn)
        self._address = (str(info.get("host", "localhost")), int(info.get("port", 5432)))
        self.writes: list[Write] = []
        #: CPU seconds the writer's thread used (set when it ends).
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop writing and wait for the thread (at most ``timeout_s`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _connect(self) -> psycopg.Connection:
        socket.create_connection(self._address, timeout=self.connect_timeout_s).close()
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=2, tcp_user_timeout=1000,
            keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
            application_name=f"cmlab-writer-{self.name}",
        )
        if self.create_table:
            conn.execute(CREATE)
        return conn

    def _run(self) -> None:
        watchdog = Watchdog.shared()
        conn: psycopg.Connection | None = None
        seq = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            sent = time.monotonic()
            requested = False
            try:
                if conn is None:
                    conn = self._connect()
                requested = True
                with watchdog.deadline(conn.pgconn.socket, self.op_timeout_s):
                    row = conn.execute(self._insert, (self.name, seq), prepare=True).fetchone()
                self.writes.append(Write(seq, sent, time.monotonic(), node=(row[0] if row else None) or None))
            except (psycopg.Error, OSError) as exc:
                # The server answered with an error (a standby: read-only): the write
                # surely failed and the connection is still good. Anything else
                # (timeout, broken connection) leaves the outcome unknown.
                answered = getattr(exc, "sqlstate", None) is not None
                self.writes.append(Write(seq, sent, None, error=f"{type(exc).__name__}: {exc}".strip()[:200],
                                         unknown=requested and not answered))
                if conn is not None and (not answered or conn.broken):
                    with suppress(Exception):
                        conn.close()
                    conn = None
            next_t = max(next_t + self.interval_s, time.monotonic())
            self._stop.wait(max(0.0, next_t - time.monotonic()))
        if conn is not None:
            with suppress(Exception):
                conn.close()
        self.cpu_s = time.thread_time()

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


def reset_table(dsn: str) -> None:
    """Create the writers' table if needed and empty it, so a trial reads
    only its own rows (on the primary; it replicates)."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        conn.execute(CREATE)
        conn.execute(f"TRUNCATE {TABLE}")
