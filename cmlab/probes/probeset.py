"""All the probes of one trial, started and stopped together, giving one
:class:`~cmlab.history.History`.

Writers: one through each VIP (``vip:<name>``), or in a lab without VIPs
one that seeks the primary among the database nodes (``seek:primary``), and
one straight to each database node (``node:<name>``), every
``write_interval_s`` seconds (default 20 ms). Observers: the manager's leader and the VIP holders every
``fast_interval_s`` (default 20 ms), each node's own role every
``role_interval_s`` (default 200 ms: Patroni's REST API is Python, and a
lab on 2 cores should not be busy answering probes).

The writers, the VIP reading, and the leader and role readings that the
engine gives as HTTP readings (etcd's key, Patroni's REST API) share one
:class:`~cmlab.probes.loop.ProbeLoop` thread; readings that can block (CM's
through ``docker exec cm_ctl``) have a thread each.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cmlab.engines.base import Engine, NodeState, Snapshot
from cmlab.engines.cluster import attach
from cmlab.history import SEEKING_WRITER, History, WriteRec
from cmlab.probes.http_poller import HttpPoller
from cmlab.probes.loop import ProbeLoop, Task, host_pressure
from cmlab.probes.observers import Poller, as_json, leader_observer, role_observer
from cmlab.probes.vip_watch import VipWatch, vip_poller
from cmlab.probes.writer import Writer
from cmlab.runtime.docker import DockerNodeAccess, DockerRuntime
from cmlab.topology.plan import LabPlan
from cmlab.topology.schema import Role


#: Late ticks kept in a trial's history (the count is kept whole).
MAX_LATE_TICKS = 1000


@dataclass(frozen=True)
class Cadence:
    """Probe intervals, seconds."""

    write_interval_s: float = 0.02
    fast_interval_s: float = 0.02
    role_interval_s: float = 0.2


def client_dsn(engine: Engine, plan: LabPlan, access: DockerNodeAccess, host: str) -> str:
    """The engine's connection string for ``host`` (a node or VIP address),
    pointed where cmlab reaches it (:meth:`DockerNodeAccess.endpoint`: itself on
    one host, a published port across hosts)."""
    dsn = engine.dsn(plan, host)
    if not plan.hosts:
        return dsn
    at, port = access.endpoint(host, int(conninfo_to_dict(dsn)["port"]))
    return make_conninfo(dsn, host=at, port=str(port))


def seeking_dsns(engine: Engine, plan: LabPlan, access: DockerNodeAccess) -> list[str]:
    """One connection string per database node, each with libpq's
    ``target_session_attrs=read-write``: the client of a cluster without a VIP
    tries them in turn and keeps the one that accepts writes (as libpq, JDBC
    and psycopg clients given several hosts do)."""
    return [make_conninfo(client_dsn(engine, plan, access, str(n.address)), target_session_attrs="read-write")
            for n in plan.nodes_with(Role.database)]


class ProbeSet:
    def __init__(self, plan: LabPlan, engine: Engine, runtime: DockerRuntime, cadence: Cadence = Cadence()) -> None:
        self.plan = plan
        self.cadence = cadence
        access = runtime.access(plan)
        targets: list[tuple[str, str | list[str]]] = [
            (f"vip:{v.name}", client_dsn(engine, plan, access, str(v.address))) for v in plan.vips]
        if not plan.vips:
            targets.append((SEEKING_WRITER, seeking_dsns(engine, plan, access)))
        targets += [(f"node:{n.name}", client_dsn(engine, plan, access, str(n.address)))
                    for n in plan.nodes_with(Role.database)]
        self.writers = [Writer(dsn, name, cadence.write_interval_s, create_table=False,
                               node_identity=engine.node_identity_sql) for name, dsn in targets]
        # As root on one host the VIP holders are told by the nodes' kernels (a
        # wake-up per change); otherwise asked of Docker in a thread.
        self.vips: VipWatch | Poller[Any] = (VipWatch(plan, runtime) if os.geteuid() == 0 and not plan.hosts
                                             else vip_poller(plan, runtime, cadence.fast_interval_s))
        #: The leader's cadence, seconds: the engine may not allow the probes' own.
        self.leader_interval_s = max(cadence.fast_interval_s, engine.min_reading_interval_s)
        role_interval_s = max(cadence.role_interval_s, engine.min_reading_interval_s)
        cluster = attach(engine, plan, access)
        snapshot = cluster.snapshot_reader()
        reading = cluster.leader_reading()
        self.leader: Poller[Any] | HttpPoller
        self.roles: list[Poller[NodeState] | HttpPoller] = []
        if snapshot is not None:
            # One reading gives the leader and every role (CM's cm_ctl query).
            self.leader = Poller("cluster", snapshot, self.leader_interval_s)
        else:
            self.leader = (HttpPoller("leader", reading, self.leader_interval_s, access.endpoint) if reading is not None
                           else leader_observer(cluster, self.leader_interval_s))
            for n in plan.nodes:
                role = cluster.role_reading(n.name)
                self.roles.append(HttpPoller(f"role-{n.name}", role, role_interval_s, access.endpoint) if role is not None
                                  else role_observer(cluster, n.name, role_interval_s))
        self.role_interval_s = self.leader_interval_s if snapshot is not None else role_interval_s
        tasks: list[Task] = [*self.writers]
        if isinstance(self.vips, VipWatch):
            tasks.append(self.vips)
        self._threads: list[Poller] = []  # readings that can block: a thread each
        for o in (self.leader, *self.roles):
            if isinstance(o, HttpPoller):
                tasks.append(o)
            else:
                self._threads.append(o)
        if isinstance(self.vips, Poller):
            self._threads.append(self.vips)
        self.loop = ProbeLoop(tasks, name=plan.name)
        self.t_start = self.t_stop = 0.0

    @property
    def observers(self) -> list[Poller | HttpPoller | VipWatch]:
        """Every observer, wherever it runs."""
        return [self.leader, self.vips, *self.roles]

    def start(self) -> None:
        self.t_start = time.monotonic()
        self._host_at_start = host_pressure()
        self.loop.start()
        # Threads that wake together contend for the GIL, and each hand-over is
        # another wake-up: each thread reads in a slot of the tick of its own,
        # out of step with the loop (at 0).
        tick = self.cadence.fast_interval_s
        for i, p in enumerate(self._threads):
            p.start(tick * (i % 3 + 1) / 4 + (i // 3) * tick)

    def stop(self) -> History:
        for p in self._threads:
            p._stop.set()
        self.loop.stop()
        for p in self._threads:
            p.stop()
        self.t_stop = time.monotonic()
        for o in self.observers:
            # A reading that holds a resource (CM's query stream: a loop in a node) ends here,
            # outside the probe window.
            close = getattr(getattr(o, "read", None), "close", None)
            if close is not None:
                close()
        h = History()
        for w in self.writers:
            h.writes += [WriteRec(w.name, x.seq, x.sent, x.acked, x.node, x.error, x.unknown) for x in w.writes]
        h.writes.sort(key=lambda r: r.sent)
        # A failed reading stays "error: ...": unknown is not "no leader".
        h.leader = [(s.t, s.dt, s.value.leader if isinstance(s.value, Snapshot) else s.value) for s in self.leader.samples]
        for s in self.leader.samples:
            if isinstance(s.value, Snapshot):
                h.roles += [(s.t, s.dt, as_json(n)) for n in s.value.nodes]
        for p in self.roles:
            h.roles += [(s.t, s.dt, as_json(s.value)) for s in p.samples if not isinstance(s.value, str)]
        h.roles.sort(key=lambda r: r[0])
        h.vips = [(s.t, s.dt, s.value) for s in self.vips.samples if isinstance(s.value, dict)]
        wall = max(self.t_stop - self.t_start, 1e-9)
        cpu = self.loop.cpu_s + sum(p.cpu_s for p in self._threads)
        h.meta.update({
            "cadence": {"write_s": self.cadence.write_interval_s, "fast_s": self.cadence.fast_interval_s,
                        "leader_s": self.leader_interval_s, "role_s": self.role_interval_s,
                        "vip_s": 0.0 if isinstance(self.vips, VipWatch) else self.vips.interval_s},
            "vip_reading": ("each node namespace's address changes (rtnetlink) and fib_trie, from the host"
                            if isinstance(self.vips, VipWatch) else "docker exec ip"),
            "probe_cpu_percent_of_one_core": round(100 * cpu / wall, 2),
            "probe_window": [self.t_start, self.t_stop],
            # The harness's own health: what the host took from the probes (see cmlab.checkers.metrics, starved).
            "harness": {"late_ticks": [[round(t, 4), round(late, 4)] for t, late in self.loop.late[:MAX_LATE_TICKS]],
                        "late_ticks_total": len(self.loop.late),
                        "host_at_start": getattr(self, "_host_at_start", None), "host_at_end": host_pressure()},
        })
        return h
