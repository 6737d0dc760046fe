"""Observers: poll the cluster at a fixed cadence and keep every sample on
the monotonic clock.

* :class:`LeaderObserver`: whom the manager names primary (its consensus
  store: Patroni's leader key, CM's CMS view), through the engine.
* :class:`RoleObserver`: each node's own view of itself (role, health,
  followers), through the engine.
* :class:`VipObserver`: which nodes hold each VIP address, read from the host
  through each node's network namespace (root), or by ``docker exec`` (slow).

Each sample is ``(t, value)`` where ``t`` is when the reading returned; the
reading began at most ``dt`` seconds earlier (kept too), which bounds the
measurement's resolution together with the cadence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cmlab.engines.base import NodeState
from cmlab.engines.cluster import Cluster
from cmlab.probes.loop import next_tick

T = TypeVar("T")


@dataclass(frozen=True)
class Sample(Generic[T]):
    """One reading: ``t`` monotonic seconds when it returned, ``dt`` how long it took."""

    t: float
    dt: float
    value: T


class Poller(Generic[T]):
    """Calls ``read`` every ``interval_s`` seconds, in a thread of its own,
    from :meth:`start` until :meth:`stop` (for readings that can block)."""

    def __init__(self, name: str, read: Callable[[], T], interval_s: float) -> None:
        self.name = name
        self.read = read
        self.interval_s = interval_s
        self.samples: list[Sample[T]] = []
        #: CPU seconds of its own thread (0 when run on a loop: the loop's).
        self.cpu_s = 0.0
        #: When the next reading is due (monotonic seconds).
        self.due = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, phase_s: float = 0.0) -> None:
        """Begin reading in a thread of its own, the first reading ``phase_s`` seconds from now."""
        self.due = time.monotonic() + phase_s
        self._thread = threading.Thread(target=self._run, name=f"observer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def poll_once(self) -> None:
        """Take one reading now and schedule the next."""
        t0 = time.monotonic()
        try:
            value = self.read()
        except Exception as exc:  # noqa: BLE001 - an observer records, it never dies
            value = f"error: {type(exc).__name__}: {exc}"  # type: ignore[assignment]
        t1 = time.monotonic()
        self.samples.append(Sample(t1, t1 - t0, value))
        self.due = next_tick(self.due, self.interval_s, t1)

    def _run(self) -> None:
        self._stop.wait(max(0.0, self.due - time.monotonic()))
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(max(0.0, self.due - time.monotonic()))
        self.cpu_s = time.thread_time()


def leader_observer(cluster: Cluster, interval_s: float) -> Poller[str | None]:
    """The leader as the manager names it, read every ``interval_s`` seconds in a thread."""
    return Poller("leader", cluster.leader, interval_s)


def role_observer(cluster: Cluster, node: str, interval_s: float) -> Poller[NodeState]:
    """``node``'s own view of itself, read every ``interval_s`` seconds in a thread."""
    return Poller(f"role-{node}", lambda: cluster.node(node), interval_s)


def as_json(value: Any) -> Any:
    """A sample value as JSON data."""
    if isinstance(value, NodeState):
        return {"node": value.name, "role": value.role.value, "healthy": value.healthy,
                "followers": list(value.followers), "detail": value.detail, "timeline": value.timeline}
    return value
