"""All the probes of one trial, started and stopped together, giving one
:class:`~cmlab.history.History`.

Writers: one through each VIP (``vip:<name>``) and one straight to each
database node (``node:<name>``), every ``write_interval_s`` seconds (default
20 ms). Observers: the manager's leader and the VIP holders every
``fast_interval_s`` (default 20 ms), each node's own role every
``role_interval_s`` (default 200 ms: Patroni's REST API is Python, and a
lab on 2 cores should not be busy answering probes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cmlab.engines.base import Engine
from cmlab.history import History, WriteRec
from cmlab.probes.observers import Poller, VipWatch, as_json, leader_observer, role_observer, vip_observer
from cmlab.probes.writer import Writer
from cmlab.runtime.docker import DockerRuntime
from cmlab.topology.plan import LabPlan
from cmlab.topology.schema import Role


@dataclass(frozen=True)
class Cadence:
    """Probe intervals, seconds."""

    write_interval_s: float = 0.02
    fast_interval_s: float = 0.02
    role_interval_s: float = 0.2


class ProbeSet:
    def __init__(self, plan: LabPlan, engine: Engine, runtime: DockerRuntime, cadence: Cadence = Cadence()) -> None:
        self.plan = plan
        self.cadence = cadence
        access = runtime.access(plan)
        targets = [(f"vip:{v.name}", str(v.address)) for v in plan.vips]
        targets += [(f"node:{n.name}", str(n.address)) for n in plan.nodes_with(Role.database)]
        self.writers = [Writer(engine.dsn(plan, host), name, cadence.write_interval_s, create_table=False,
                               node_identity=engine.node_identity_sql) for name, host in targets]
        self.vip_watch = VipWatch(plan, runtime)
        self.leader = leader_observer(engine, plan, access, cadence.fast_interval_s)
        self.vips = vip_observer(self.vip_watch, cadence.fast_interval_s)
        self.roles = [role_observer(engine, plan, access, n.name, cadence.role_interval_s) for n in plan.nodes]
        self._pollers: list[Poller] = [self.leader, self.vips, *self.roles]
        self.t_start = self.t_stop = 0.0

    def start(self) -> None:
        self.t_start = time.monotonic()
        for w in self.writers:
            w.start()
        for p in self._pollers:
            p.start()

    def stop(self) -> History:
        for w in self.writers:
            w._stop.set()
        for p in self._pollers:
            p._stop.set()
        for w in self.writers:
            w.stop()
        for p in self._pollers:
            p.stop()
        self.t_stop = time.monotonic()
        self.vip_watch.close()
        h = History()
        for w in self.writers:
            h.writes += [WriteRec(w.name, x.seq, x.sent, x.acked, x.node, x.error, x.unknown) for x in w.writes]
        h.writes.sort(key=lambda r: r.sent)
        # A failed reading stays "error: ...": unknown is not "no leader".
        h.leader = [(s.t, s.dt, s.value) for s in self.leader.samples]
        for p in self.roles:
            h.roles += [(s.t, s.dt, as_json(s.value)) for s in p.samples if not isinstance(s.value, str)]
        h.roles.sort(key=lambda r: r[0])
        h.vips = [(s.t, s.dt, s.value) for s in self.vips.samples if isinstance(s.value, dict)]
        wall = max(self.t_stop - self.t_start, 1e-9)
        cpu = sum(w.cpu_s for w in self.writers) + sum(p.cpu_s for p in self._pollers)
        h.meta.update({
            "cadence": {"write_s": self.cadence.write_interval_s, "fast_s": self.cadence.fast_interval_s,
                        "role_s": self.cadence.role_interval_s, "vip_s": self.vips.interval_s},
            "vip_reading": "netlink in the node's namespace" if self.vip_watch.fast else "docker exec ip",
            "probe_cpu_percent_of_one_core": round(100 * cpu / wall, 2),
            "probe_window": [self.t_start, self.t_stop],
        })
        return h
