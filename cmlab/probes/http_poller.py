"""An engine's HTTP reading (:class:`~cmlab.engines.base.HttpReading`, e.g.
Patroni's leader key in etcd) taken every 20 ms on the probes' shared
:class:`~cmlab.probes.loop.ProbeLoop`, without a thread of its own: a
non-blocking socket per endpoint, kept alive, and the endpoints tried in
turn, each with the reading's deadline. Its samples are a
:class:`~cmlab.probes.observers.Poller`'s.
"""

from __future__ import annotations

from collections.abc import Callable

import errno
import select
import socket
from typing import Any

from cmlab.engines.base import HttpReading
from cmlab.probes.loop import next_tick
from cmlab.probes.observers import Sample
from cmlab.runtime.http import parse_response, request


#: Deadline of the TCP handshake, seconds (within the reading's own deadline).
TCP_CONNECT_S = 0.25


class HttpPoller:
    """Takes ``reading`` every ``interval_s`` seconds when driven by a
    :class:`~cmlab.probes.loop.ProbeLoop`; a reading no endpoint answers is
    recorded as the reading's ``unanswered()`` value, or else as
    ``"error: EngineError: <the reading's failure>"``.

    :param endpoint: where to connect for a node's ``(address, port)``
        (:meth:`~cmlab.runtime.docker.DockerNodeAccess.endpoint`); default: there.
    """

    def __init__(self, name: str, reading: HttpReading, interval_s: float,
                 endpoint: Callable[[str, int], tuple[str, int]] | None = None) -> None:
        self.name = name
        self.reading = reading
        self.interval_s = interval_s
        self.samples: list[Sample[Any]] = []
        self.cpu_s = 0.0  # it runs on the loop: the loop's CPU
        self.due = 0.0
        where = endpoint or (lambda address, port: (address, port))
        self._addresses = [where(str(node.address), port) for node, port in reading.endpoints]
        self._requests = [request(host, port, reading.path) for host, port in self._addresses]
        self._preferred = 0          # the endpoint that answered last
        self._sock: socket.socket | None = None
        self._sock_of = -1           # which endpoint self._sock is connected to
        self._busy = False
        self._tried = 0              # endpoints tried in this reading
        self._at = 0                 # the endpoint asked now
        self._kept = False           # self._sock was kept alive from an earlier reading
        self._out = b""
        self._buf = b""
        self._t0 = 0.0
        self._step_deadline = 0.0
        self._asked = 0.0
        self._connecting = False
        self.events = select.POLLIN  # the loop's view, as Writer's: events, fd, deadline_at
        self.fd = -1
        self.deadline_at = 0.0

    # ---- the loop's interface (as Writer's) ------------------------------------------------

    def begin(self, now: float) -> None:
        self.due = now
        self._sync()

    def on_time(self, now: float) -> None:
        if self._busy:
            self._next_endpoint(now)
        elif now >= self.due:
            self._busy, self._tried, self._t0 = True, 0, now
            self._ask(self._preferred, now)
        self._sync()

    def on_io(self, now: float) -> None:
        self._io(now)
        self._sync()

    def _sync(self) -> None:
        self.fd = self._sock.fileno() if self._busy and self._sock is not None else -1
        self.deadline_at = self._step_deadline if self._busy else self.due

    def _io(self, now: float) -> None:
        sock = self._sock
        assert sock is not None
        try:
            if self._out:  # connecting, or a request not yet all sent
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, errno.errorcode.get(err, "connect failed"))
                if self._connecting:  # connected: the answer gets the reading's whole deadline
                    self._connecting = False
                    self._step_deadline = self._asked + self.reading.timeout_s
                self._out = self._out[sock.send(self._out):]
                self.events = select.POLLOUT if self._out else select.POLLIN
                return
            data = sock.recv(65536)
            self._buf += data
            response = parse_response(self._buf, closed=not data)
        except (OSError, ValueError):
            if self._kept:  # a kept-alive connection the server had closed: once more on a new one
                self._drop()
                self._ask(self._at, now, again=True)
            else:
                self._next_endpoint(now)
            return
        if response is None:
            return
        if not response.keep_alive:
            self._drop()
        try:
            value = self.reading.parse(response.status, response.body)
        except ValueError:
            self._next_endpoint(now)
            return
        self._preferred = self._at
        self._record(now, value)

    def close(self) -> None:
        self._drop()
        self._busy = False
        self._sync()

    # ---- steps -----------------------------------------------------------------------------

    def _ask(self, index: int, now: float, again: bool = False) -> None:
        self._at = index
        if not again:
            self._tried += 1
        self._asked = now
        self._step_deadline = now + self.reading.timeout_s
        self._buf = b""
        self._out = self._requests[index]
        if self._sock is not None and self._sock_of != index:
            self._drop()
        self._kept = self._sock is not None
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(self._addresses[index])
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                self._next_endpoint(now)
                return
            self._sock, self._sock_of = sock, index
            self.events = select.POLLOUT
            # A node that is gone never completes the handshake, and a live one
            # does within a millisecond whatever its load (the kernel answers).
            self._connecting = True
            self._step_deadline = now + min(TCP_CONNECT_S, self.reading.timeout_s)
            return
        try:  # a kept-alive connection: ask at once, no need to wait for it to be writable
            self._out = self._out[self._sock.send(self._out):]
        except OSError:
            self._drop()
            self._ask(index, now, again=True)
            return
        self.events = select.POLLOUT if self._out else select.POLLIN

    def _next_endpoint(self, now: float) -> None:
        self._drop()
        if self._tried >= len(self._addresses):
            unanswered = self.reading.unanswered
            self._record(now, unanswered() if unanswered else f"error: EngineError: {self.reading.failure}")
            return
        self._ask((self._at + 1) % len(self._addresses), now)

    def _record(self, now: float, value: Any) -> None:
        self.samples.append(Sample(now, now - self._t0, value))
        self._busy = False
        self.due = next_tick(self.due, self.interval_s, now)

    def _drop(self) -> None:
        self._connecting = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._sock_of = -1
        self._kept = False
