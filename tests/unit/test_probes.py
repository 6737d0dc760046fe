"""The probes' loop and its non-blocking tasks, against local sockets (no lab)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from cmlab.engines.base import HttpReading
from cmlab.errors import EngineError
from cmlab.probes.http_poller import HttpPoller
from cmlab.probes.loop import ProbeLoop, next_tick
from cmlab.probes.writer import Writer
from cmlab.runtime.http import HttpGetter, parse_response


@dataclass(frozen=True)
class Node:
    address: str


def test_next_tick_keeps_to_the_grid():
    assert next_tick(1.0, 0.02, 1.005) == pytest.approx(1.02)
    assert next_tick(1.0, 0.02, 1.02) == pytest.approx(1.04)  # on a grid point: the next one
    assert next_tick(1.0, 0.02, 1.25) == pytest.approx(1.26)  # overran: the next grid point, not "now"


def test_parse_response_framings():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert parse_response(head + b"he") is None
    r = parse_response(head + b"hello" + b"HTTP/1.1")
    assert (r.status, r.body, r.keep_alive, r.size) == (200, b"hello", True, len(head) + 5)
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert parse_response(chunked[:-2]) is None
    r = parse_response(chunked)
    assert (r.status, r.body, r.keep_alive) == (404, b"abcde", True)
    old = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}"
    assert parse_response(old) is None  # framed by the close
    r = parse_response(old, closed=True)
    assert (r.body, r.keep_alive) == (b"{}", False)
    assert parse_response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive is False
    with pytest.raises(ValueError, match="not an HTTP response"):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ValueError, match="middle of the body"):
        parse_response(head + b"he", closed=True)


@contextmanager
def http_server(answer: bytes | None, keep_alive: bool = True) -> Iterator[tuple[int, list[int]]]:
    """A local server answering every request with ``answer`` (None: never
    answers); yields its port and the number of connections it accepted."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    accepted: list[int] = []
    done = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while not done.is_set():
                try:
                    if not conn.recv(4096):
                        return
                except OSError:
                    return
                if answer is not None:
                    conn.sendall(answer)
                    if not keep_alive:
                        return

    def accept() -> None:
        srv.settimeout(0.1)
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield port, accepted
    finally:
        done.set()
        t.join()
        srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def reading(*ports: int, timeout_s: float = 0.3) -> HttpReading:
    def parse(status: int, body: bytes) -> str | None:
        if status == 404:
            return None
        if status != 200:
            raise ValueError(status)
        return body.decode()

    return HttpReading(tuple((Node("127.0.0.1"), p) for p in ports), "/leader", timeout_s, parse, "nobody answered")


def run_loop(tasks: list, seconds: float) -> ProbeLoop:
    loop = ProbeLoop(tasks, name="test")
    loop.start()
    time.sleep(seconds)  # the window the probes run in
    loop.stop()
    return loop


def sleep_measuring_lateness(seconds: float, step_s: float = 0.05) -> float:
    """Sleep ``seconds`` in steps, and return the latest wake-up, seconds after
    it was due: how much this run's host delays a sleeping thread (the
    resolution that a test's timing bound must allow for)."""
    late = 0.0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        due = time.monotonic() + min(step_s, left)
        time.sleep(min(step_s, left))  # the probes' window, measured
        late = max(late, time.monotonic() - due)
    return late


def test_http_poller_reads_on_a_kept_alive_connection_and_skips_a_dead_endpoint():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\npg2"
    with http_server(ok) as (port, accepted):
        poller = HttpPoller("leader", reading(closed_port(), port), 0.02)
        loop = run_loop([poller], 0.5)
    values = [s.value for s in poller.samples]
    # 25 ticks of 20 ms, less what the host took from the loop (the bounds allow for this run's late ticks).
    assert len(values) >= int((0.5 - loop.late_total_s) / 0.02) - 10 and set(values) == {"pg2"}, loop.late
    assert len(accepted) == 1  # one connection, kept alive
    ts = [s.t for s in poller.samples]
    assert max(b - a for a, b in zip(ts, ts[1:])) < 0.1 + loop.max_late_s


def test_http_poller_records_no_leader_and_failures():
    with http_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") as (port, _):
        poller = HttpPoller("leader", reading(port), 0.02)
        run_loop([poller], 0.2)
    assert poller.samples and {s.value for s in poller.samples} == {None}
    with http_server(None) as (silent, _):  # accepts, never answers: each reading times out
        poller = HttpPoller("leader", reading(silent, closed_port(), timeout_s=0.1), 0.02)
        loop = run_loop([poller], 0.5)
    assert poller.samples and {s.value for s in poller.samples} == {"error: EngineError: nobody answered"}
    assert all(0.09 <= s.dt < 0.3 + loop.max_late_s for s in poller.samples)


def test_http_reading_take_blocking_and_http_getter_reconnects():
    with http_server(b"HTTP/1.0 200 OK\r\n\r\npg3", keep_alive=False) as (port, accepted):
        getter = HttpGetter("127.0.0.1", port)
        assert [getter.get("/x", 1.0).body for _ in range(3)] == [b"pg3"] * 3
        assert len(accepted) == 3  # HTTP/1.0: a connection per request

        class Access:
            def http_get(self, node, p, path, timeout_s):
                r = HttpGetter(node.address, p).get(path, timeout_s)
                return r.status, r.body

        assert reading(closed_port(), port).take(Access()) == "pg3"
        with pytest.raises(EngineError, match="nobody answered"):
            reading(closed_port()).take(Access())


def test_writer_records_refused_and_timed_out_logins_as_failed_not_unknown():
    refused = Writer(f"host=127.0.0.1 port={closed_port()} user=x dbname=x", "refused", 0.02)
    with http_server(None) as (silent, _):  # TCP accepts, the login never completes
        silent_writer = Writer(f"host=127.0.0.1 port={silent} user=x dbname=x", "silent", 0.02,
                               connect_timeout_s=0.2)
        loop = run_loop([refused, silent_writer], 0.6)
    # 30 ticks of 20 ms, less what the host took from the loop (its late ticks).
    assert len(refused.writes) >= min(20, int((0.6 - loop.late_total_s) / 0.02) - 5), loop.late
    assert all(w.acked is None and not w.unknown and w.error for w in refused.writes)
    # Each login waits its deadline (0.2 s), then the next attempt is on the next tick.
    assert max(1, min(2, int((0.6 - loop.late_total_s) / 0.2) - 1)) <= len(silent_writer.writes) <= 4, loop.late
    assert all(w.error == "connection timed out" and not w.unknown for w in silent_writer.writes)
    seqs = [w.seq for w in refused.writes]
    assert seqs == list(range(1, len(seqs) + 1))


def test_http_poller_gives_up_on_a_handshake_sooner_than_on_an_answer():
    # 192.0.2.1 (TEST-NET-1) is never routed to anyone: the SYN goes unanswered
    # (or is refused at once by a host without a route; either way, not 1 s).
    gone = HttpReading(((Node("192.0.2.1"), 9),), "/x", 1.0, lambda status, body: body, "gone")
    poller = HttpPoller("role", gone, 0.02)
    loop = run_loop([poller], 0.8)
    assert poller.samples and all(s.dt < 0.4 + loop.max_late_s for s in poller.samples)


def cm_query_sample() -> str:
    """The documented `cm_ctl query -Cvidp` sample, its hosts renamed to the
    nodes of topologies/opengauss-1az.yaml."""
    from tests.unit.test_opengauss_cm import SAMPLE

    return SAMPLE.replace("host40", "og1").replace("host39", "og2").replace("host15", "og3")


def test_an_engine_read_through_docker_exec_gets_one_snapshot_poller_at_its_own_pace():
    """CM: one `cm_ctl query` gives the leader and every role, at most every
    0.2 s (a docker exec each), where Patroni's readings are taken apart."""
    from pathlib import Path

    from cmlab.engines.registry import default_registry
    from cmlab.probes.probeset import Cadence, ProbeSet
    from cmlab.topology import load

    registry = default_registry()
    plan = load(Path(__file__).resolve().parents[2] / "topologies" / "opengauss-1az.yaml", registry)
    calls: list[list[str]] = []

    class Access:
        def running(self, node):
            return True

        def exec(self, node, argv, user="root"):
            calls.append(argv)
            return 0, cm_query_sample()

    class Runtime:
        def access(self, plan):
            return Access()

        def container(self, node):
            return None

    probes = ProbeSet(plan, registry.get("opengauss-cm"), Runtime(), Cadence())  # type: ignore[arg-type]
    probes.writers.clear()  # no database here: the readings only
    probes.loop.tasks.clear()
    probes.start()
    late = sleep_measuring_lateness(0.5)
    h = probes.stop()
    # At most every 0.2 s; at least twice in 0.5 s unless this host delayed a sleeping thread by more than 50 ms.
    assert (2 if late < 0.05 else 1) <= len(calls) <= 4, f"{len(calls)} cm_ctl calls in 0.5 s (host {late:.3f} s late)"
    assert {leader for _, _, leader in h.leader} == {"og1"}
    assert {(r["node"], r["role"]) for _, _, r in h.roles} == {("og1", "primary"), ("og2", "standby"), ("og3", "standby")}
    assert h.meta["cadence"]["leader_s"] == 0.2
