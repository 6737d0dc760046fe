"""Engine ``postgres-patroni``: PostgreSQL 15, Patroni 3.0.2, etcd 3.4 and
vip-manager 1.0.2, all from Debian 12's packages.

A node with role ``quorum`` runs an etcd member; a node with role
``database`` runs Patroni (which runs PostgreSQL) and, when its AZ has a VIP,
vip-manager. supervisord keeps them running, under tini as PID 1 (the
postmaster is re-parented to PID 1 and must be reaped: reference §7).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from cmlab.engines.base import (
    COMMAND_KEY,
    ClusterState,
    ContainerSpec,
    Engine,
    FileSpec,
    HttpReading,
    ImageRecipe,
    NodeAccess,
    NodeRole,
    NodeState,
    Timing,
)
from cmlab.engines.postgres_patroni import config
from cmlab.engines.postgres_patroni.parameters import COMMAND_SETTINGS, PatroniParameters
from cmlab.engines.postgres_patroni import warm
from cmlab.errors import EngineError, Issue, WaitTimeout
from cmlab.topology.plan import LabPlan, NodePlan
from cmlab.topology.schema import Role, Topology
from cmlab.wait import wait_for

#: Patroni 3.0.2's /cluster roles (patroni@v3.0.2 patroni/utils.py cluster_as_json).
_ROLES = {"leader": NodeRole.primary, "master": NodeRole.primary, "sync_standby": NodeRole.sync_standby,
          "replica": NodeRole.standby, "standby_leader": NodeRole.standby}
#: Seconds a REST call may take; /patroni can block during crash recovery (reference §9).
HTTP_TIMEOUT_S = 1.0
#: Seconds a leader-key read may take: it is polled every few tens of milliseconds.
LEADER_TIMEOUT_S = 0.25


class PostgresPatroni(Engine):
    name = "postgres-patroni"
    summary = "PostgreSQL 15 + Patroni 3.0.2 + etcd 3.4 + vip-manager 1.0.2 (Debian 12 packages)"
    Parameters = PatroniParameters
    processes = {"database": "postgres", "agent": "patroni", "quorum": "etcd", "vip": "vip-manager"}
    warm_start = warm.PatroniWarmStart()

    def command_parameters(self, params: dict[str, Any]) -> list[str]:
        """postgresql.conf settings PostgreSQL runs as commands or loads as code (:data:`COMMAND_SETTINGS`)."""
        return [f"postgresql.{key}" for key in params.get("postgresql", {})
                if key.lower() in COMMAND_SETTINGS or COMMAND_KEY.search(key)]
    recipe = ImageRecipe(name="postgres-patroni", folder="postgres-patroni")

    def check(self, topo: Topology, params: dict[str, Any]) -> list[Issue]:
        p = PatroniParameters.model_validate(params)
        issues: list[Issue] = []
        quorum = [n for n in topo.nodes if Role.quorum in n.roles]
        database = [n for n in topo.nodes if Role.database in n.roles]
        if len(quorum) < 3:
            issues.append(Issue("nodes", f"{len(quorum)} node(s) have role 'quorum'; etcd needs a majority of at least 3 to survive a loss",
                                "give the 'quorum' role to at least 3 nodes"))
        if not database:
            issues.append(Issue("nodes", "no node has role 'database'", "give the 'database' role to at least one node"))
        if p.synchronous_mode and len(database) < 2:
            issues.append(Issue("parameters.synchronous_mode", "synchronous replication needs at least 2 database nodes",
                                "add a database node or set synchronous_mode: false"))
        if p.loop_wait + 2 * p.retry_timeout > p.ttl:
            issues.append(Issue("parameters.ttl", f"loop_wait + 2 x retry_timeout = {p.loop_wait + 2 * p.retry_timeout} s exceeds ttl = {p.ttl} s",
                                "raise ttl or lower loop_wait / retry_timeout (Patroni: loop_wait + 2 x retry_timeout <= ttl)"))
        if p.etcd_election_timeout_ms < 5 * p.etcd_heartbeat_ms:
            issues.append(Issue("parameters.etcd_election_timeout_ms", "etcd refuses an election timeout under 5 x the heartbeat interval",
                                f"set it to at least {5 * p.etcd_heartbeat_ms} ms"))
        return issues

    def container(self, plan: LabPlan, node: NodePlan) -> ContainerSpec:
        p = PatroniParameters.model_validate(plan.parameters)
        files = {config.SUPERVISORD_CONF: FileSpec(config.supervisord_conf(plan, node, p))}
        volumes: dict[str, str] = {}
        if node.has(Role.database):
            files[config.PATRONI_YML] = FileSpec(config.patroni_yml(plan, node, p), mode=0o600, uid=_POSTGRES_UID, gid=_POSTGRES_GID)
            volumes[warm.MOUNT] = warm.VOLUME
        vip = config.vip_manager_yml(plan, node, p)
        if vip is not None:
            files[config.VIP_MANAGER_YML] = FileSpec(vip)
        if node.has(Role.quorum):
            volumes["/var/lib/etcd"] = "etcd"
        return ContainerSpec(
            command=["/usr/bin/supervisord", "-n", "-c", config.SUPERVISORD_CONF],
            files=files,
            volumes=volumes,
            # vip-manager adds and removes the VIP and sends gratuitous ARP (reference §4).
            cap_add=["NET_ADMIN", "NET_RAW"],
        )

    def timing(self, plan: LabPlan) -> Timing:
        p = PatroniParameters.model_validate(plan.parameters)
        vip_s = 2 * p.vip_interval_ms / 1000 + 2.0
        return Timing(
            # initdb, etcd bootstrap and pg_basebackup of the standbys; measured
            # 6.5-10.8 s on bare namespaces (reference §9), so a wide margin.
            start_s=60.0 + 2 * p.ttl,
            # vip-manager 1.0.2 rechecks its address every 10 s (reference §4).
            vip_repair_s=10.0 + 2 * p.vip_interval_ms / 1000 + 2.0,
            # Leader key expiry (ttl), one loop, the survivors' 2 s REST check of the
            # dead node, promotion (reference §2); the issue's bound.
            failover_s=float(p.ttl + p.loop_wait + 5),
            vip_s=vip_s,
            poll_s=min(0.25, p.loop_wait / 4),
            # When the etcd member the primary's Patroni talks to loses its leader, the
            # primary may give up on the DCS after retry_timeout (its loop having started
            # up to loop_wait earlier) and demote, keeping the leader lock; the shutdown
            # takes up to primary_stop_timeout, and the next loop promotes it again
            # ("promoted self to leader because I had the session lock"). Or the cut-off
            # node was the sync standby: its member key expires (ttl) and another is
            # chosen, as in a failover.
            quorum_leader_loss_s=float(max(p.ttl + p.loop_wait, 2 * p.loop_wait + p.retry_timeout + p.primary_stop_timeout) + 5),
        )

    def dsn(self, plan: LabPlan, host: str) -> str:
        return f"host={host} port={config.PG_PORT} user={config.SUPERUSER[0]} password={config.SUPERUSER[1]} dbname=postgres"

    def client_ports(self, plan: LabPlan) -> tuple[int, ...]:
        """PostgreSQL (probes), Patroni's REST API and etcd's client port (readings)."""
        return (config.PG_PORT, config.REST_PORT, config.ETCD_CLIENT_PORT)

    def leader(self, plan: LabPlan, access: NodeAccess) -> str | None:
        """The value of the leader key ``/service/<scope>/leader`` (etcd v2),
        read from the first quorum member that answers; None when absent.
        Raises :class:`EngineError` when no member answers (unknown, not "none")."""
        return self.leader_reading(plan).take(access)

    def leader_reading(self, plan: LabPlan) -> HttpReading:
        # A quorum read: a member cut off from its peers cannot answer it, where a
        # plain read would serve its stale copy (the old leader, forever).
        return _quorum_read(plan, config.leader_key(plan), LEADER_TIMEOUT_S, _leader_value)

    def observe_node(self, plan: LabPlan, node: NodePlan, access: NodeAccess) -> NodeState:
        """:meth:`role_reading`, taken now; a node that does not answer is
        ``down`` when its container is not running (asked only then: a Docker
        API call per reading would cost more than the reading), else ``unknown``."""
        try:
            return self.role_reading(plan, node).take(access)
        except EngineError:
            return _unanswered(node) if access.running(node) else _down(node)

    def role_reading(self, plan: LabPlan, node: NodePlan) -> HttpReading:
        """A database node: Patroni's ``GET /patroni`` (role ``master``/``replica``
        in 3.0.2; a primary lists its streaming standbys under ``replication``;
        a 503 still carries the body). A quorum-only node: etcd's ``GET /health``."""
        if node.has(Role.database):
            return HttpReading(((node, config.REST_PORT),), "/patroni", HTTP_TIMEOUT_S,
                               lambda status, body: _patroni_state(node, status, body),
                               f"{node.name}: Patroni's REST API did not answer", lambda: _unanswered(node))
        return HttpReading(((node, config.ETCD_CLIENT_PORT),), "/health", HTTP_TIMEOUT_S,
                           lambda status, body: NodeState(node.name, NodeRole.quorum, healthy=_etcd_health(status, body)),
                           f"{node.name}: etcd did not answer", lambda: _unanswered(node))

    def diagnostics(self, plan: LabPlan, access: NodeAccess) -> dict[str, str]:
        """Patroni's ``GET /cluster`` from the first node that answers, and the leader key."""
        out: dict[str, str] = {}
        for node in plan.nodes_with(Role.database):
            try:
                out["patroni GET /cluster"] = json.dumps(access.http_json(node, config.REST_PORT, "/cluster", HTTP_TIMEOUT_S), indent=2)
                break
            except (OSError, ValueError) as exc:
                out["patroni GET /cluster"] = f"(failed on {node.name}: {exc})"
        try:
            out["etcd leader key"] = str(self.leader(plan, access))
        except EngineError as exc:
            out["etcd leader key"] = f"(failed: {exc})"
        return out

    def repair(self, plan: LabPlan, access: NodeAccess, node: str) -> None:
        """A standby: ``POST /reinitialize`` (force), Patroni rebuilds it with
        pg_basebackup from the leader (Patroni docs rest_api.rst).

        The leader: synchronous mode is paused until the leader has deleted its
        ``/sync`` key, then resumed, so that Patroni picks a sync standby and
        sets ``synchronous_standby_names`` afresh. That is the way out of the
        state Patroni before 3.2 never leaves by itself (patroni/patroni#2877):
        the key names a standby while the primary replicates asynchronously,
        as after Patroni restarts on the primary. Takes up to two HA loops
        plus retry_timeout (seconds).

        :raises EngineError: Patroni refused the change, or kept its key.
        """
        if node != self.leader(plan, access):
            access.http_post(plan.node(node), config.REST_PORT, "/reinitialize", {"force": True}, 10.0)
            return
        p = PatroniParameters.model_validate(plan.parameters)
        if p.synchronous_mode:
            with self._synchronous_mode_paused(plan, access, plan.node(node), p):
                pass

    def switchover(self, plan: LabPlan, access: NodeAccess, candidate: str) -> None:
        """``POST /switchover`` to the current leader's REST API (Patroni docs rest_api.rst)."""
        leader = self.leader(plan, access)
        if leader is None:
            raise EngineError("no leader to switch over from")
        if leader == candidate:
            return
        node = plan.node(leader)
        p = PatroniParameters.model_validate(plan.parameters)
        # In synchronous mode Patroni switches over only to the sync standby; to reach
        # another node, synchronous mode is paused for the switchover (PATCH /config is dynamic).
        with self._synchronous_mode_paused(plan, access, node, p) if p.synchronous_mode else contextlib.nullcontext():
            status, body = access.http_post(node, config.REST_PORT, "/switchover", {"leader": leader, "candidate": candidate}, 30.0)
        if status != 200:
            raise EngineError(f"switchover {leader} -> {candidate} refused (HTTP {status}): {body.strip()}")

    @classmethod
    @contextlib.contextmanager
    def _synchronous_mode_paused(cls, plan: LabPlan, access: NodeAccess, leader: NodePlan,
                                 p: PatroniParameters) -> Iterator[None]:
        """Synchronous mode off (``PATCH /config``, dynamic) until the leader has
        deleted its ``/sync`` key; back on when the block ends, whatever happens in it."""
        cls._set_sync(access, leader, False)
        try:
            cls._wait_sync_key_gone(plan, access, p)
            yield
        finally:
            cls._set_sync(access, leader, True)

    @staticmethod
    def _wait_sync_key_gone(plan: LabPlan, access: NodeAccess, p: PatroniParameters) -> None:
        """Wait until the leader, in its next HA loop, has deleted the ``/sync`` key
        (deadline: two loops plus retry_timeout, seconds).

        Why: a switchover that runs before the deletion leaves the old leader's
        ``/sync`` behind. When the new leader then picks the same standby, Patroni
        3.0.2 (``Ha.process_sync_replication``: ``current`` is the key's members,
        whoever its leader) sees nothing to change and never sets
        ``synchronous_standby_names``: it acknowledges writes asynchronously while
        the key lets that standby be promoted. Seen in CI: 449 acknowledged writes
        lost when the primary's AZ was cut away after such a switchover.

        :raises EngineError: the key is still there after the deadline.
        """
        reading = _quorum_read(plan, config.sync_key(plan), HTTP_TIMEOUT_S,
                               lambda status, body: _leader_value(status, body) is None)
        deadline_s = 2 * p.loop_wait + p.retry_timeout
        try:
            wait_for(lambda: reading.take(access), bool, deadline_s, min(0.25, p.loop_wait / 4), "deleted /sync key")
        except WaitTimeout as exc:
            raise EngineError(f"synchronous mode paused for the switchover, but the leader kept its /sync key: {exc}") from None

    @staticmethod
    def _set_sync(access: NodeAccess, node: NodePlan, on: bool) -> None:
        status, body = access.http_post(node, config.REST_PORT, "/config", {"synchronous_mode": on}, 10.0, method="PATCH")
        if status != 200:
            raise EngineError(f"PATCH /config synchronous_mode={on} refused (HTTP {status}): {body.strip()}")

    def quorum_leader(self, plan: LabPlan, access: NodeAccess) -> str | None:
        """The etcd leader, from each member's ``/v2/stats/self`` (``StateLeader``)."""
        for node in plan.nodes_with(Role.quorum):
            try:
                if access.http_json(node, config.ETCD_CLIENT_PORT, "/v2/stats/self", HTTP_TIMEOUT_S).get("state") == "StateLeader":
                    return node.name
            except (OSError, ValueError):
                continue
        return None

    def observe(self, plan: LabPlan, access: NodeAccess) -> ClusterState:
        running = {n.name: access.running(n) for n in plan.nodes}
        members: dict[str, dict[str, Any]] = {}
        # Ask the leader first: a node cut off from etcd may still answer with a stale view.
        try:
            leader = self.leader(plan, access)
        except EngineError:
            leader = None
        ordered = sorted(plan.nodes_with(Role.database), key=lambda n: n.name != leader)
        for node in ordered:
            if not running[node.name]:
                continue
            try:
                data = access.http_json(node, config.REST_PORT, "/cluster", HTTP_TIMEOUT_S)
            except (OSError, ValueError):
                continue
            members = {m["name"]: m for m in data.get("members", [])}
            break
        p = PatroniParameters.model_validate(plan.parameters)
        synchronous = _synchronous_standbys(plan, access, leader) if running.get(leader or "") else None
        named_not_synchronous: list[str] = []
        states = []
        for node in plan.nodes:
            if not running[node.name]:
                states.append(_down(node))
            elif node.has(Role.database):
                m = members.get(node.name)
                if m is None:
                    states.append(NodeState(node.name, NodeRole.unknown, healthy=False, detail="not a Patroni member yet"))
                    continue
                lag = m.get("lag")
                role = _ROLES.get(m.get("role", ""), NodeRole.unknown)
                if role is NodeRole.sync_standby and node.name not in (synchronous or ()):
                    # /cluster names the /sync key's members whoever its leader; the
                    # primary may not replicate synchronously to them (yet).
                    role = NodeRole.standby
                    if synchronous is not None:
                        named_not_synchronous.append(node.name)
                states.append(NodeState(
                    node.name, role,
                    healthy=m.get("state") in ("running", "streaming"),
                    lag_bytes=lag if isinstance(lag, int) else None,
                    timeline=m.get("timeline"), detail=str(m.get("state", "")),
                ))
            else:
                healthy = _etcd_healthy(access, node)
                states.append(NodeState(node.name, NodeRole.quorum, healthy=healthy, detail="etcd " + ("healthy" if healthy else "unhealthy")))
        states = _behind_the_primarys_timeline(states)
        return ClusterState(tuple(states), not_ready=_why_not_ready(plan, states, p, named_not_synchronous))


def _synchronous_standbys(plan: LabPlan, access: NodeAccess, leader: str) -> set[str] | None:
    """The standbys the leader's PostgreSQL replicates to synchronously:
    ``sync_state`` ``sync`` (or ``quorum``) in its ``pg_stat_replication``, as
    Patroni's ``GET /patroni`` lists it under ``replication``. None when the
    leader does not answer (unknown, not "none")."""
    try:
        data = access.http_json(plan.node(leader), config.REST_PORT, "/patroni", HTTP_TIMEOUT_S)
    except (OSError, ValueError):
        return None
    return {r.get("application_name", "") for r in data.get("replication", []) if r.get("sync_state") in ("sync", "quorum")}


def _quorum_read(plan: LabPlan, key: str, timeout_s: float, parse: Callable[[int, bytes], Any]) -> HttpReading:
    """A quorum read of an etcd v2 key from the first quorum member that answers
    (``timeout_s`` seconds each)."""
    return HttpReading(
        endpoints=tuple((n, config.ETCD_CLIENT_PORT) for n in plan.nodes_with(Role.quorum)),
        path=f"/v2/keys{key}?quorum=true", timeout_s=timeout_s, parse=parse,
        failure=f"no etcd member answered a quorum read of {key}")


def _leader_value(status: int, body: bytes) -> str | None:
    """A key's value from etcd v2's answer (the leader key, or /sync); None when
    the key is absent (expired or deleted: no leader, no sync state).

    :raises ValueError: any other answer (a member without quorum: 5xx).
    """
    if status == 404:
        return None
    if status != 200:
        raise ValueError(f"HTTP {status}")
    return str(json.loads(body).get("node", {}).get("value")) or None


def _down(node: NodePlan) -> NodeState:
    return NodeState(node.name, NodeRole.down, healthy=False, detail="container not running")


def _unanswered(node: NodePlan) -> NodeState:
    return NodeState(node.name, NodeRole.unknown, healthy=False, detail="no answer")


def _patroni_state(node: NodePlan, status: int, body: bytes) -> NodeState:
    try:
        data = json.loads(body)
    except ValueError:
        return NodeState(node.name, NodeRole.unknown, healthy=False, detail=f"HTTP {status}")
    role = NodeRole.primary if data.get("role") in ("master", "primary") else (
        NodeRole.standby if data.get("role") == "replica" else NodeRole.unknown)
    followers = tuple(r.get("application_name", "") for r in data.get("replication", []) if r.get("state") == "streaming")
    if role is NodeRole.standby and data.get("sync_standby"):
        role = NodeRole.sync_standby
    return NodeState(node.name, role, healthy=data.get("state") == "running", timeline=data.get("timeline"),
                     detail=str(data.get("state", "")), followers=followers)


def _etcd_health(status: int, body: bytes) -> bool:
    try:
        return status == 200 and str(json.loads(body).get("health")) == "true"
    except ValueError:
        return False


def _etcd_healthy(access: NodeAccess, node: NodePlan) -> bool:
    try:
        return _etcd_health(*access.http_get(node, config.ETCD_CLIENT_PORT, "/health", HTTP_TIMEOUT_S))
    except OSError:
        return False


def _behind_the_primarys_timeline(states: list[NodeState]) -> list[NodeState]:
    """A standby whose timeline (Patroni's ``/cluster``) is not the primary's is
    not healthy: it has not followed the last promotion, and a switchover to
    it would promote onto a timeline ID that already exists with other WAL.
    Seen in CI: pg4 left on timeline 1 by an earlier AZ split, promoted by a
    switchover to a second "timeline 2", and the standby that had pg1's
    timeline 2 further along reported itself flushed past every new commit,
    so pg4 acknowledged 668 writes that no standby held; all were lost at the
    next failover. Right after a failover this holds for a few seconds."""
    primary = next((s for s in states if s.role is NodeRole.primary), None)
    if primary is None or primary.timeline is None:
        return states
    out = []
    for s in states:
        if s.role in (NodeRole.standby, NodeRole.sync_standby) and s.timeline is not None and s.timeline != primary.timeline:
            s = replace(s, healthy=False, detail=f"{s.detail}, on timeline {s.timeline} (the primary's: {primary.timeline})")
        out.append(s)
    return out


def _why_not_ready(plan: LabPlan, states: list[NodeState], p: PatroniParameters,
                   named_not_synchronous: Sequence[str] = ()) -> str:
    db = [s for s in states if plan.node(s.name).has(Role.database)]
    primaries = [s for s in db if s.role is NodeRole.primary]
    if len(primaries) != 1:
        return f"{len(primaries)} primaries"
    sick = [s.name for s in states if not s.healthy]
    if sick:
        return f"not healthy: {', '.join(sick)}"
    lagless = [s.name for s in db if s.role is not NodeRole.primary and s.lag_bytes is None]
    if lagless:
        return f"not streaming yet: {', '.join(lagless)}"
    if p.synchronous_mode and len(db) > 1 and not any(s.role is NodeRole.sync_standby for s in db):
        if named_not_synchronous:
            # Patroni's order is synchronous_standby_names first, /sync second; a key
            # ahead of the primary is the inconsistency Patroni < 3.2 never repairs
            # (patroni/patroni#2877), seen after Patroni restarted on the primary:
            # writes are acknowledged asynchronously while the key lets the named
            # standby be promoted. `repair` on the leader resets it.
            return (f"no sync standby: Patroni's /sync key names {', '.join(named_not_synchronous)}, but the primary "
                    "does not replicate to it synchronously (for good when Patroni before 3.2 restarted on the "
                    "primary, patroni/patroni#2877; `repair` on the primary resets it)")
        return "no sync standby yet"
    return ""


# Debian's postgres user; fixed in the image recipe (images/postgres-patroni/Dockerfile).
_POSTGRES_UID = 101
_POSTGRES_GID = 101
