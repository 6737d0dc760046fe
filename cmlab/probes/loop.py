"""One thread for the probes that must be cheap at a 20 ms cadence.

On a small VM a thread's wake-up alone costs tens of microseconds of CPU,
and a blocking round trip a few hundred (``ci/bench_probes.py``), so the
fast probes share one thread. Tasks are non-blocking state machines (the
writers, :class:`~cmlab.probes.writer.Writer`; an engine's HTTP reading,
:class:`~cmlab.probes.http_poller.HttpPoller`) and the thread waits in
``poll(2)`` on all their sockets and deadlines at once; the VIP holders
(:class:`~cmlab.probes.vip_watch.VipWatch`) wake it only when an address
changes. Readings that can block (``docker exec cm_ctl``) keep threads of
their own (:class:`~cmlab.probes.observers.Poller`).
"""

from __future__ import annotations

import math
import select
import threading
import time
from collections.abc import Sequence
from typing import Protocol

#: Longest wait in poll(2), seconds: how soon :meth:`ProbeLoop.stop` is seen.
MAX_WAIT_S = 0.1
#: A deadline handled this much after it was due is a late tick, seconds: the
#: host did not give the loop the CPU (a wake-up costs well under 1 ms here).
LATE_S = 0.010


def next_tick(due: float, interval_s: float, now: float) -> float:
    """The next point of the grid ``due + k * interval_s`` after ``due`` that is
    not in the past (all times monotonic seconds).

    Every probe keeps to its grid: an attempt that overran its interval is
    followed by the next grid point, not by one at once, so probes started
    together stay in step and share their wake-ups."""
    if now < due + interval_s:
        return due + interval_s
    return due + interval_s * math.ceil((now - due) / interval_s)


class Task(Protocol):
    """A non-blocking probe the loop drives. It keeps three attributes up to
    date after each call (the loop reads them several times a tick, so they
    are attributes, not methods); times are monotonic seconds."""

    fd: int  # the socket in flight, -1 when none
    events: int  # what to wait for on fd: select.POLLIN or POLLOUT
    deadline_at: float  # when on_time must be called

    def begin(self, now: float) -> None: ...  # the first attempt is due now
    def on_time(self, now: float) -> None: ...  # the deadline passed: time out, or begin the next attempt
    def on_io(self, now: float) -> None: ...  # fd is ready
    def close(self) -> None: ...  # drop any connection


class ProbeLoop:
    """Drives ``tasks`` from one thread until :meth:`stop`.

    :param tasks: non-blocking probes (writers, HTTP readings, the VIP watch).
    """

    def __init__(self, tasks: Sequence[Task] = (), name: str = "probes") -> None:
        self.tasks = list(tasks)
        #: CPU seconds the loop's thread used (set when it ends).
        self.cpu_s = 0.0
        #: The loop's own lateness: ``(monotonic time, seconds late)`` of each
        #: tick handled more than :data:`LATE_S` after its deadline (the host
        #: starved the harness, not the cluster: a trial's figures are only as
        #: good as this).
        self.late: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-loop-{name}", daemon=True)

    def start(self) -> None:
        now = time.monotonic()
        for t in self.tasks:
            t.begin(now)
        self._thread.start()

    @property
    def max_late_s(self) -> float:
        """The latest tick, seconds after its deadline (0.0: none over :data:`LATE_S`)."""
        return max((late for _, late in self.late), default=0.0)

    @property
    def late_total_s(self) -> float:
        """Seconds the loop lost to lateness in all: its window shortened by the host."""
        return sum(late for _, late in self.late)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop, close the writers' connections, wait for the thread (at most ``timeout_s`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                due = min((t.deadline_at for t in self.tasks), default=now)
                if now - due > LATE_S:
                    self.late.append((now, now - due))
                for t in self.tasks:
                    if now >= t.deadline_at:
                        t.on_time(now)
                self._wait()
        finally:
            for t in self.tasks:
                t.close()
            self.cpu_s = time.thread_time()

    def _wait(self) -> None:
        """Wait for a socket or the next deadline, then hand ready sockets to their tasks."""
        waiting = select.poll()
        by_fd: dict[int, Task] = {}
        next_at = time.monotonic() + MAX_WAIT_S
        for t in self.tasks:
            if t.fd >= 0:
                by_fd[t.fd] = t
                waiting.register(t.fd, t.events)
            if t.deadline_at < next_at:
                next_at = t.deadline_at
        timeout_s = max(0.0, next_at - time.monotonic())
        ready = waiting.poll(timeout_s * 1000)
        now = time.monotonic()
        for fd, _ in ready:
            by_fd[fd].on_io(now)


#: Where the kernel tells CPU pressure (PSI), where it has it.
CPU_PRESSURE = "/proc/pressure/cpu"


def host_pressure() -> dict[str, float | None]:
    """The host's load now: ``load1`` (the 1-minute load average) and
    ``cpu_some_avg10`` (the share of the last 10 s in which some task waited
    for a CPU, percent; None where the kernel has no PSI)."""
    import os

    pressure = None
    try:
        with open(CPU_PRESSURE) as f:
            for word in f.readline().split():
                if word.startswith("avg10="):
                    pressure = float(word.removeprefix("avg10="))
    except (OSError, ValueError):
        pass
    return {"load1": round(os.getloadavg()[0], 2), "cpu_some_avg10": pressure}
