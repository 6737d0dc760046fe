"""Writer probes: sequence-numbered inserts at a fixed cadence, each its own
transaction, every request and acknowledgement time on the monotonic clock.

An acknowledged write is one whose COMMIT returned; it must survive any
failover in synchronous mode. A write whose outcome is unknown (the
connection broke after the request was sent) may or may not be there.

Every writer of a trial is driven by one :class:`~cmlab.probes.loop.ProbeLoop`
thread over libpq's non-blocking interface (psycopg's ``pq`` layer): a
thread per writer cost a wake-up, a blocking round trip and psycopg's
Python layer per write, about 0.3-0.5 ms of CPU each on a 2-core VM
(``ci/bench_probes.py``). How the deadlines are kept (they decide the
measurement's resolution, reference postgres-patroni.md §9):

* connect: the TCP handshake gets ``tcp_connect_s`` (a SYN lost to a
  vanished address is not worth libpq's retransmission wait), the whole
  login ``connect_timeout_s``; the write that started the connection is sent
  as soon as it is up;
* each insert: past ``op_timeout_s`` the connection is dropped, the outcome
  is unknown, and no cancel request reaches the server (a cancel would end a
  commit's wait for its sync standby and commit locally);
* ``tcp_user_timeout`` and keepalives make a connection to a vanished
  primary fail in about a second instead of hanging in TCP retransmission.
"""

from __future__ import annotations

from collections.abc import Sequence

import enum
import select
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

from cmlab.probes.loop import ProbeLoop, next_tick

TABLE = "cmlab_writes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (writer text NOT NULL, seq bigint NOT NULL, node text, PRIMARY KEY (writer, seq))"
#: How the server names itself in the row (the engine may give another SQL
#: expression: :attr:`cmlab.engines.base.Engine.node_identity_sql`).
NODE_IDENTITY = "current_setting('cmlab.node', true)"
_STATEMENT = b"cmlab_write"


def insert_sql(node_identity: str = NODE_IDENTITY) -> str:
    """The writers' insert, with libpq placeholders ``$1`` (writer) and ``$2`` (seq)."""
    return f"INSERT INTO {TABLE} (writer, seq, node) VALUES ($1, $2, {node_identity}) RETURNING node"


@dataclass(frozen=True)
class Write:
    """One write attempt.

    :param sent: monotonic time the attempt began, seconds.
    :param acked: monotonic time the commit returned, seconds; None if not acknowledged.
    :param node: the node that acknowledged it (the engine's node identity).
    :param error: why it failed, when it did.
    :param unknown: the request may have reached the server (outcome unknown).
    """

    seq: int
    sent: float
    acked: float | None
    node: str | None = None
    error: str | None = None
    unknown: bool = False


class _State(enum.Enum):
    closed = "closed"
    connecting = "connecting"
    preparing = "preparing"
    idle = "idle"
    writing = "writing"


class Writer:
    """Writes ``seq = 1, 2, ...`` through ``dsn`` every ``interval_s`` seconds.

    Driven by a :class:`~cmlab.probes.loop.ProbeLoop` (``with Writer(...)``
    runs one of its own); its record is :attr:`writes`.

    :param dsn: libpq connection string (e.g. to the VIP), or several: a
        client that seeks the primary, trying them in turn (each with
        ``target_session_attrs=read-write``) and moving on from one whose
        login fails or times out. One connection string a login (not libpq's
        own multi-host list): the TCP deadline must move to the next host,
        not restart at the first.
    :param name: the writer's name, stored with each row.
    :param interval_s: cadence, seconds (the issue asks for <= 0.05).
    :param connect_timeout_s: deadline of a whole login, seconds.
    :param tcp_connect_s: deadline of the TCP handshake within it, seconds.
    :param op_timeout_s: deadline of one insert, seconds.
    :param create_table: create the table on each new connection.
    :param node_identity: SQL expression naming the server (the engine's).
    """

    def __init__(self, dsn: str | Sequence[str], name: str = "w1", interval_s: float = 0.02,
                 connect_timeout_s: float = 2.0, tcp_connect_s: float = 0.25, op_timeout_s: float = 1.0,
                 create_table: bool = True, node_identity: str = NODE_IDENTITY) -> None:
        self.dsn = dsn
        self.name = name
        self.interval_s = interval_s
        self.connect_timeout_s = connect_timeout_s
        self.tcp_connect_s = tcp_connect_s
        self.op_timeout_s = op_timeout_s
        self.create_table = create_table
        self._insert = insert_sql(node_identity).encode()
        self._conninfos = [make_conninfo(
            one, connect_timeout=max(2, int(connect_timeout_s + 0.999)), tcp_user_timeout=1000,
            keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
            application_name=f"cmlab-writer-{name}").encode() for one in ([dsn] if isinstance(dsn, str) else dsn)]
        self._at = 0  # the connection string of the next login
        self._name_param = name.encode()
        self.writes: list[Write] = []
        self._loop: ProbeLoop | None = None
        # The state machine (only the loop's thread touches it).
        self._state = _State.closed
        self._pg: pq.PGconn | None = None
        self._seq = 0
        self._sent = 0.0            # the current attempt's start
        self._requested = False     # the current insert was handed to the socket
        self._started = 0.0         # when the current step (connect, insert) began
        self._result: pq.PGresult | None = None
        self.due = 0.0              # when the next attempt is due (monotonic seconds)
        self.events = select.POLLIN
        self.fd = -1
        self.deadline_at = 0.0

    # ---- standalone use --------------------------------------------------------------------

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write from a loop thread of its own (a trial's writers share one: ProbeSet)."""
        loop = ProbeLoop(tasks=[self], name=f"writer-{self.name}")
        self._loop = loop
        loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop started by :meth:`start` (at most ``timeout_s`` seconds)."""
        loop = self._loop
        if loop is not None:
            loop.stop(timeout_s)

    # ---- the state machine, driven by ProbeLoop ---------------------------------------------

    # What the loop reads on every pass, kept up to date by _sync after each
    # call (attributes, not methods: the loop passes several times a tick).
    #   fd: the socket to wait on, -1 when nothing is in flight;
    #   events: what to wait for on it (select.POLLIN / POLLOUT);
    #   deadline_at: when the step in flight times out, or the next attempt
    #   is due (monotonic seconds).

    def begin(self, now: float) -> None:
        """The first attempt is due at ``now`` (monotonic seconds)."""
        self.due = now
        self._sync()

    def on_time(self, now: float) -> None:
        """Called by the loop at or after :attr:`deadline_at`: time out the step
        in flight, or begin the next attempt."""
        self._time(now)
        self._sync()

    def on_io(self, now: float) -> None:
        """Called by the loop when :attr:`fd` is ready."""
        self._io(now)
        self._sync()

    def _sync(self) -> None:
        state = self._state
        if state is _State.closed or state is _State.idle or self._pg is None:
            self.fd, self.deadline_at = -1, self.due
        elif state is _State.connecting:
            self.fd = self._pg.socket
            tcp = self._pg.status == pq.ConnStatus.STARTED
            self.deadline_at = self._started + (self.tcp_connect_s if tcp else self.connect_timeout_s)
        else:
            self.fd, self.deadline_at = self._pg.socket, self._started + self.op_timeout_s

    def _time(self, now: float) -> None:
        if self._state is _State.connecting:
            self._fail(now, "connection timed out", unknown=False)
        elif self._state in (_State.preparing, _State.writing):
            self._fail(now, f"no answer within {self.op_timeout_s} s", unknown=self._requested)
        elif now >= self.due:
            self._seq += 1
            self._sent = now
            self._requested = False
            if self._state is _State.closed:
                self._connect(now)
            else:
                self._send(now)

    def _io(self, now: float) -> None:
        pg = self._pg
        assert pg is not None
        if self._state is _State.connecting:
            status = pg.connect_poll()
            if status == pq.PollingStatus.OK:
                self._after_login(now)
            elif status == pq.PollingStatus.FAILED:
                self._fail(now, _message(pg, "connection failed"), unknown=False)
            else:
                self.events = select.POLLOUT if status == pq.PollingStatus.WRITING else select.POLLIN
            return
        try:
            if self.events == select.POLLOUT and pg.flush() == 0:
                self.events = select.POLLIN
            pg.consume_input()
            while not pg.is_busy():
                result = pg.get_result()
                if result is None:
                    break  # the command is complete
                if self._result is None:
                    self._result = result
            else:
                return  # more to read
        except psycopg.OperationalError as exc:
            self._fail(now, str(exc).strip() or "connection lost", unknown=self._requested)
            return
        result, self._result = self._result, None
        if result is None:
            self._fail(now, _message(pg, "no result"), unknown=self._requested)
        elif self._state is _State.preparing:
            if result.status != pq.ExecStatus.COMMAND_OK:
                self._fail(now, _result_error(result), unknown=False)
            else:
                self._send(now)
        else:
            self._finish(now, result)

    def close(self) -> None:
        """Drop the connection (no cancel request: see the module doc)."""
        self._result = None
        if self._pg is not None:
            self._pg.finish()
            self._pg = None
        self._state = _State.closed
        self._sync()

    # ---- steps ------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        self._started = now
        self._pg = pq.PGconn.connect_start(self._conninfos[self._at])
        if self._pg.status == pq.ConnStatus.BAD:
            self._fail(now, _message(self._pg, "connection failed"), unknown=False)
            return
        self._pg.nonblocking = 1
        self._state = _State.connecting
        self.events = select.POLLOUT  # libpq: after connect_start, wait until the socket is writable

    def _after_login(self, now: float) -> None:
        pg = self._pg
        assert pg is not None
        self._started = now
        self._state = _State.preparing
        self.events = select.POLLIN
        sql = (CREATE + ";").encode() if self.create_table else b""
        if sql:
            # Blocking, once per connection and only when asked: the table is
            # normally made by reset_table before a trial.
            pg.nonblocking = 0
            result = pg.exec_(sql)
            pg.nonblocking = 1
            if result.status != pq.ExecStatus.COMMAND_OK:
                self._fail(now, _result_error(result), unknown=False)
                return
        pg.send_prepare(_STATEMENT, self._insert)
        self._flush()

    def _send(self, now: float) -> None:
        pg = self._pg
        assert pg is not None
        self._started = now
        self._state = _State.writing
        try:
            pg.send_query_prepared(_STATEMENT, [self._name_param, str(self._seq).encode()])
            self._requested = True
            self._flush()
        except psycopg.OperationalError as exc:
            self._fail(now, str(exc).strip() or "send failed", unknown=self._requested)

    def _flush(self) -> None:
        assert self._pg is not None
        self.events = select.POLLOUT if self._pg.flush() == 1 else select.POLLIN

    def _finish(self, now: float, result: pq.PGresult) -> None:
        if result.status == pq.ExecStatus.TUPLES_OK:
            value = result.get_value(0, 0) if result.ntuples else None
            self.writes.append(Write(self._seq, self._sent, now, node=value.decode() if value else None))
            self._state = _State.idle
        else:
            # The server answered with an error and the connection is still good
            # (a standby: read-only): the write surely failed. An error that ends
            # the connection (a terminated backend) may come after a local commit
            # whose wait for the sync standby was cut short: unknown.
            alive = self._pg is not None and self._pg.status == pq.ConnStatus.OK
            self.writes.append(Write(self._seq, self._sent, None, error=_result_error(result), unknown=not alive))
            self._state = _State.idle
            if not alive:
                self.close()
        self._next(now)

    def _fail(self, now: float, error: str, unknown: bool) -> None:
        if self._state is _State.connecting or self._state is _State.closed:  # this host would not take us: the next one
            self._at = (self._at + 1) % len(self._conninfos)
        self.writes.append(Write(self._seq, self._sent, None, error=error[:200], unknown=unknown))
        self.close()
        self._next(now)

    def _next(self, now: float) -> None:
        self.due = next_tick(self.due, self.interval_s, now)
        self._requested = False

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


def _message(pg: pq.PGconn, default: str) -> str:
    return pg.get_error_message().strip() or default


def _result_error(result: pq.PGresult) -> str:
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = result.error_message.decode(errors="replace").strip() or result.status.name
    return f"{state.decode() if state else 'error'}: {message}"


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
