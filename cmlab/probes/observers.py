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

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cmlab.engines.base import Engine, NodeAccess, NodeState
from cmlab.errors import FaultError
from cmlab.runtime.docker import DockerRuntime
from cmlab.runtime.netns import ContainerNetns, holds_address
from cmlab.topology.plan import LabPlan

T = TypeVar("T")


@dataclass(frozen=True)
class Sample(Generic[T]):
    """One reading: ``t`` monotonic seconds when it returned, ``dt`` how long it took."""

    t: float
    dt: float
    value: T


class Poller(Generic[T]):
    """Calls ``read`` every ``interval_s`` seconds in a thread until :meth:`stop`."""

    def __init__(self, name: str, read: Callable[[], T], interval_s: float) -> None:
        self.name = name
        self.read = read
        self.interval_s = interval_s
        self.samples: list[Sample[T]] = []
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"observer-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                value = self.read()
            except Exception as exc:  # noqa: BLE001 - an observer records, it never dies
                value = f"error: {type(exc).__name__}: {exc}"  # type: ignore[assignment]
            t1 = time.monotonic()
            self.samples.append(Sample(t1, t1 - t0, value))
            next_t = max(next_t + self.interval_s, t1)
            self._stop.wait(max(0.0, next_t - time.monotonic()))
        self.cpu_s = time.thread_time()


def leader_observer(engine: Engine, plan: LabPlan, access: NodeAccess, interval_s: float) -> Poller[str | None]:
    return Poller("leader", lambda: engine.leader(plan, access), interval_s)


def role_observer(engine: Engine, plan: LabPlan, access: NodeAccess, node: str, interval_s: float) -> Poller[NodeState]:
    n = plan.node(node)
    return Poller(f"role-{node}", lambda: engine.observe_node(plan, n, access), interval_s)


class VipWatch:
    """Reads which nodes hold each VIP. As root it reads each node's local
    addresses from the host through /proc (well under a millisecond per
    node); otherwise it asks ``docker exec ip`` (tens of milliseconds)."""

    def __init__(self, plan: LabPlan, runtime: DockerRuntime) -> None:
        self.plan = plan
        self.runtime = runtime
        self.fast = os.geteuid() == 0
        self._sockets: dict[str, tuple[ContainerNetns, None]] = {}  # node -> its entered namespace

    def holders(self) -> dict[str, list[str]]:
        if not self.fast:
            return self.runtime.vip_holders(self.plan)
        out: dict[str, list[str]] = {v.name: [] for v in self.plan.vips}
        for node in self.plan.nodes:
            vip = self.plan.vip_of_az(node.az)
            if vip is None:
                continue
            if self._holds(node.name, str(vip.address)):
                out[vip.name].append(node.name)
        return out

    def _holds(self, node: str, address: str) -> bool:
        """Whether the node's namespace has ``address`` as a local address."""
        cached = self._sockets.get(node)
        if cached is None or not cached[0].current():
            self._drop(node)
            c = self.runtime.container(self.plan.node(node))
            if c is None or c.status not in ("running", "paused"):
                return False
            try:
                cached = self._sockets[node] = (ContainerNetns(c), None)
            except FaultError:
                return False
        try:
            return holds_address(cached[0].pid, address)
        except OSError:
            self._drop(node)
            return False

    def _drop(self, node: str) -> None:
        self._sockets.pop(node, None)

    def close(self) -> None:
        for node in list(self._sockets):
            self._drop(node)


def vip_observer(watch: VipWatch, interval_s: float) -> Poller[dict[str, list[str]]]:
    return Poller("vip", watch.holders, interval_s if watch.fast else max(interval_s, 0.5))


def as_json(value: Any) -> Any:
    """A sample value as JSON data."""
    if isinstance(value, NodeState):
        return {"node": value.name, "role": value.role.value, "healthy": value.healthy,
                "followers": list(value.followers), "detail": value.detail, "timeline": value.timeline}
    return value
