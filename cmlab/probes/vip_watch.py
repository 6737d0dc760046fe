"""Which nodes hold each VIP, told by the nodes' kernels when it changes.

As root, each node's namespace is read from the host
(:class:`~cmlab.runtime.netns.AddressReader`): an rtnetlink socket in the
namespace wakes the probe loop when an address is added or removed there,
and one ``pread`` of its routing table then says who holds what. Nothing is
read while nothing changes, and a change is seen as it happens rather than
at the next tick of a 20 ms grid. The holders are also read every
``refresh_s`` seconds, when nodes that were not running are looked up again
in Docker. Without root, :func:`vip_poller` asks ``docker exec ip`` in a
thread (tens of milliseconds a reading).
"""

from __future__ import annotations

import select
import time

from cmlab.errors import FaultError
from cmlab.probes.observers import Poller, Sample
from cmlab.runtime.docker import DockerRuntime
from cmlab.runtime.netns import AddressReader
from cmlab.topology.plan import LabPlan

Holders = dict[str, list[str]]


class VipWatch:
    """A :class:`~cmlab.probes.loop.Task`: records a :class:`Sample` of the
    holders (VIP name -> nodes) at the start, at every address change in a
    node's namespace, at every node's exit, and every ``refresh_s`` seconds.

    :param refresh_s: how often the holders are read without a change, and
        nodes that were not running looked up again, seconds. A Docker API
        call costs milliseconds of CPU, and a node that starts again needs
        seconds before its manager gives it a VIP (Patroni's election and
        vip-manager's loop; CM's promotion and cm_agent's VIP check).
    """

    name = "vip"

    def __init__(self, plan: LabPlan, runtime: DockerRuntime, refresh_s: float = 1.0) -> None:
        self.plan = plan
        self.runtime = runtime
        self.interval_s = refresh_s
        self.samples: list[Sample[Holders]] = []
        self.cpu_s = 0.0  # runs on the probe loop: its CPU is the loop's
        self._readers: dict[str, AddressReader] = {}
        self._fd_node: dict[int, tuple[str, bool]] = {}  # fd -> (node, is its pidfd)
        self._epoll = select.epoll()
        self.fd = self._epoll.fileno()
        self.events = select.POLLIN
        self.deadline_at = 0.0

    # ---- the loop's Task ---------------------------------------------------------------------

    def begin(self, now: float) -> None:
        self.on_time(now)

    def on_time(self, now: float) -> None:
        self._look_up()
        self._record(now)
        self.deadline_at = now + self.interval_s

    def on_io(self, now: float) -> None:
        self._take_notices()
        self._record(now)

    def close(self) -> None:
        for node in list(self._readers):
            self._drop(node)
        self._epoll.close()

    # ---- reading -----------------------------------------------------------------------------

    def holders(self) -> Holders:
        """Who holds each VIP now (nodes not running hold none; looked up in
        Docker when not watched yet)."""
        self._take_notices()
        self._look_up()
        return self._read()

    def _record(self, t0: float) -> None:
        value = self._read()
        t1 = time.monotonic()
        self.samples.append(Sample(t1, t1 - t0, value))

    def _read(self) -> Holders:
        out: Holders = {v.name: [] for v in self.plan.vips}
        for node in self.plan.nodes:
            vip = self.plan.vip_of_az(node.az)
            reader = self._readers.get(node.name)
            if vip is None or reader is None:
                continue
            try:
                if reader.read(str(vip.address)):
                    out[vip.name].append(node.name)
            except OSError:
                self._drop(node.name)
        return out

    def _take_notices(self) -> None:
        """Empty the change sockets that have something; drop the nodes that exited."""
        for fd, _ in self._epoll.poll(0):
            node, exited = self._fd_node.get(fd, ("", False))
            reader = self._readers.get(node)
            if reader is None:
                continue
            if exited:
                self._drop(node)
            else:
                try:
                    reader.drain()
                except OSError:
                    self._drop(node)

    def _look_up(self) -> None:
        for node in self.plan.nodes:
            if node.name in self._readers or self.plan.vip_of_az(node.az) is None:
                continue
            c = self.runtime.container(node)
            if c is None or c.status not in ("running", "paused"):
                continue
            try:
                reader = AddressReader(c)
            except (FaultError, OSError):
                continue
            self._readers[node.name] = reader
            for fd, exited in ((reader.pidfd, True), (reader.changes_fd, False)):
                self._fd_node[fd] = (node.name, exited)
                self._epoll.register(fd, select.EPOLLIN)

    def _drop(self, node: str) -> None:
        reader = self._readers.pop(node, None)
        if reader is None:
            return
        for fd in (reader.pidfd, reader.changes_fd):
            self._fd_node.pop(fd, None)
            self._epoll.unregister(fd)
        reader.close()


def vip_poller(plan: LabPlan, runtime: DockerRuntime, interval_s: float) -> Poller[Holders]:
    """Without root: the holders from ``docker exec ip`` in each node, at most every 0.5 s."""
    return Poller("vip", lambda: runtime.vip_holders(plan), max(interval_s, 0.5))
