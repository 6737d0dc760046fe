"""An engine bound to one running lab, and the abilities an engine may have.

:meth:`Engine.attach` gives a :class:`Cluster`: the engine, the lab's plan
and the runtime's access to its nodes, held together, so that what observes
or acts on the cluster (the lab, the probes, the nemesis, trials and
schedules) asks ``cluster.snapshot()`` or ``cluster.switchover("pg2")``
instead of passing ``plan`` and ``access`` to the engine at every call, as
Patroni's ``Cluster`` is one object a cycle reads.

Optional abilities are small protocols (:data:`ABILITIES`): an engine has one
when it implements its method. A scenario that needs an ability the lab's
engine lacks is refused when the scenario is checked against the lab
(:meth:`cmlab.scenarios.schema.Scenario.check_against`), never in the middle
of a trial; the handle's methods for the abilities that only enrich a
reading (diagnostics, events, the quorum leader, upstreams) answer "none"
when the engine lacks them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cmlab.engines.base import ClusterState, HttpReading, NodeAccess, NodeState, Snapshot
from cmlab.errors import EngineError

if TYPE_CHECKING:
    from cmlab.engines.base import Engine
    from cmlab.topology.plan import LabPlan, NodePlan


@runtime_checkable
class Switchover(Protocol):
    def switchover(self, plan: "LabPlan", access: NodeAccess, candidate: str) -> None:
        """Ask the manager to move the primary to ``candidate`` (planned, no
        data loss). Raises :class:`cmlab.errors.EngineError` when refused."""


@runtime_checkable
class Repair(Protocol):
    def repair(self, plan: "LabPlan", access: NodeAccess, node: str) -> None:
        """Bring a node that stays unhealthy back (rebuild it from the primary), between trials."""


@runtime_checkable
class QuorumLeader(Protocol):
    def quorum_leader(self, plan: "LabPlan", access: NodeAccess) -> str | None:
        """The node that leads the quorum group now (etcd leader, CMS primary),
        or None when none can be seen."""


@runtime_checkable
class Upstream(Protocol):
    def upstream(self, plan: "LabPlan", access: NodeAccess, node: str) -> str | None:
        """The node a standby (a cascade standby most of all) streams its WAL
        from now, or None when it streams from none."""


@runtime_checkable
class Diagnostics(Protocol):
    def diagnostics(self, plan: "LabPlan", access: NodeAccess) -> dict[str, str]:
        """The manager's own account of the cluster, as its tools print it
        (title -> text), for a person reading a failed test or ``cmlab status
        --manager``. Never raises: a tool that fails gives its error as text."""


@runtime_checkable
class EventSource(Protocol):
    def collect_events(self, plan: "LabPlan", access: NodeAccess) -> list[dict[str, Any]]:
        """Events the manager itself recorded (CM's event triggers), each with
        ``event``, ``t`` (seconds, the host's monotonic clock) and ``node``."""


@runtime_checkable
class SnapshotReadings(Protocol):
    def snapshot_reader(self, plan: "LabPlan", access: NodeAccess) -> Callable[[], Snapshot]:
        """A function giving the leader and every node's state from one
        reading, for an engine whose readings all ask the same tool (CM: one
        ``cm_ctl query``); the probes then take one reading where they would
        take a leader and a role per node. It raises :class:`EngineError`
        when the tool cannot be asked."""


@runtime_checkable
class HttpReadings(Protocol):
    def leader_reading(self, plan: "LabPlan") -> HttpReading:
        """:meth:`Engine.leader` as one HTTP GET (etcd's leader key): the
        probes read it every 20 ms on their shared loop."""

    def role_reading(self, plan: "LabPlan", node: "NodePlan") -> HttpReading:
        """:meth:`Engine.observe_node` as one HTTP GET (Patroni's REST API),
        giving a :class:`NodeState`."""


@dataclass(frozen=True)
class Ability:
    """One optional ability: the protocol an engine implements to have it,
    and what a user is told it is for."""

    name: str
    protocol: type
    summary: str


#: Every optional ability, one entry each; ``Engine.abilities`` and the
#: scenario checks read this list.
ABILITIES: tuple[Ability, ...] = (
    Ability("switchover", Switchover, "a planned switchover through the manager"),
    Ability("quorum-leader", QuorumLeader, "names its quorum's leader (etcd leader, CMS primary)"),
    Ability("cascade", Upstream, "says whom each standby streams from (cascade standbys)"),
    Ability("repair", Repair, "rebuilds a node that stays unhealthy, between trials"),
    Ability("diagnostics", Diagnostics, "prints the manager's own account (cmlab status --manager)"),
    Ability("events", EventSource, "records the manager's own events (CM's event triggers)"),
    Ability("snapshot-readings", SnapshotReadings, "gives the leader and every role from one reading"),
    Ability("http-readings", HttpReadings, "gives the leader and each role as one HTTP GET"),
)


class Cluster:
    """The cluster of one running lab, as its engine reads and drives it.

    Made by :meth:`Engine.attach`; cheap (no reading happens until asked).
    """

    def __init__(self, engine: "Engine", plan: "LabPlan", access: NodeAccess) -> None:
        self.engine, self.plan, self.access = engine, plan, access

    def has(self, ability: str) -> bool:
        """Whether the engine has the ability named in :data:`ABILITIES` on this plan."""
        return ability in abilities(self.engine, self.plan)

    # ---- readings ------------------------------------------------------------------

    def snapshot(self) -> ClusterState:
        """Every node's role and health, and why the cluster is not ready, from one reading."""
        return self.engine.observe(self.plan, self.access)

    def leader(self) -> str | None:
        """The node the manager names primary (see :meth:`Engine.leader`).

        :raises EngineError: it cannot be read.
        """
        return self.engine.leader(self.plan, self.access)

    def node(self, name: str) -> NodeState:
        """``name``'s own view of itself (see :meth:`Engine.observe_node`)."""
        return self.engine.observe_node(self.plan, self.plan.node(name), self.access)

    def quorum_leader(self) -> str | None:
        """The quorum's leader now; None when none is seen or the engine cannot tell."""
        return self.engine.quorum_leader(self.plan, self.access) if isinstance(self.engine, QuorumLeader) else None

    def upstream(self, node: str) -> str | None:
        """Whom ``node`` streams from now; None when none or the engine cannot tell."""
        return self.engine.upstream(self.plan, self.access, node) if isinstance(self.engine, Upstream) else None

    def diagnostics(self) -> dict[str, str]:
        """The manager's own account (title -> text); empty when the engine gives none."""
        return self.engine.diagnostics(self.plan, self.access) if isinstance(self.engine, Diagnostics) else {}

    def events(self) -> list[dict[str, Any]]:
        """The manager's own recorded events; empty when the engine records none."""
        return self.engine.collect_events(self.plan, self.access) if isinstance(self.engine, EventSource) else []

    def snapshot_reader(self) -> Callable[[], Snapshot] | None:
        """The engine's one-reading function for the probes, or None."""
        return self.engine.snapshot_reader(self.plan, self.access) if isinstance(self.engine, SnapshotReadings) else None

    def leader_reading(self) -> HttpReading | None:
        """The leader as one HTTP GET, or None."""
        return self.engine.leader_reading(self.plan) if isinstance(self.engine, HttpReadings) else None

    def role_reading(self, node: str) -> HttpReading | None:
        """``node``'s role as one HTTP GET, or None."""
        return self.engine.role_reading(self.plan, self.plan.node(node)) if isinstance(self.engine, HttpReadings) else None

    # ---- actions -------------------------------------------------------------------

    def switchover(self, candidate: str) -> None:
        """Move the primary to ``candidate`` through the manager.

        :raises EngineError: the engine has no switchover, or the manager refused.
        """
        if not isinstance(self.engine, Switchover):
            raise EngineError(f"engine {self.engine.name} has no switchover")
        self.engine.switchover(self.plan, self.access, candidate)

    def repair(self, node: str) -> bool:
        """Have the engine rebuild ``node``; False when it cannot (the lab then stays unready)."""
        if not isinstance(self.engine, Repair):
            return False
        self.engine.repair(self.plan, self.access, node)
        return True


def attach(engine: "Engine", plan: "LabPlan", access: NodeAccess) -> Cluster:
    """``engine`` bound to the running lab of ``plan``, reached through ``access``."""
    return Cluster(engine, plan, access)


def abilities(engine: "Engine", plan: "LabPlan") -> frozenset[str]:
    """The names of :data:`ABILITIES` that ``engine`` has on ``plan``:
    each whose protocol it implements; ``cascade`` only when the plan has
    cascade standbys (:meth:`Engine.cascade_standbys`)."""
    out = {a.name for a in ABILITIES if isinstance(engine, a.protocol)}
    if not engine.cascade_standbys(plan):
        out.discard("cascade")
    return frozenset(out)
