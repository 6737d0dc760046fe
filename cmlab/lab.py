"""A lab: its plan, its engine and its Docker objects (:class:`Lab`), from
a topology file or read back from Docker; and the labs of this host
(:func:`labs`, :func:`down`, :func:`reap`, the warm-start snapshots).

Below the runs, sweeps, bundles and replays, which take a :class:`Lab`;
:mod:`cmlab.api` is the facade over all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmlab.engines.base import ClusterState, Engine, NodeRole, Timing
from cmlab.engines.cluster import Cluster, attach
from cmlab.engines.registry import EngineRegistry, default_registry
from cmlab.errors import CmlabError, EngineError, LabError, WaitTimeout
from cmlab.progress import Progress, Quiet, log
from cmlab.resources import example_topology
from cmlab.runtime.routes import host_routes
from cmlab.state import remove_lab_state, save_plan, saved_labs, saved_plan
from cmlab.topology import resolve
from cmlab.topology.plan import LabPlan
from cmlab.topology.yaml_source import read_yaml_file
from cmlab.wait import wait_for

# Docker's SDK, pyroute2, psycopg and matplotlib cost seconds of CPU to import,
# so every command would pay for them: they are imported where they are used
# (tests/unit/test_imports.py holds the CLI and the pytest plugin to it).
if TYPE_CHECKING:
    import docker

    from cmlab.faults.nemesis import Nemesis
    from cmlab.runtime.docker import Removed
    from cmlab.runtime.snapshots import StoredSnapshot



def connect() -> "docker.DockerClient":
    """A client of the Docker Engine (:func:`cmlab.runtime.client.connect`).

    :raises DockerUnavailable: it cannot be reached.
    """
    from cmlab.runtime.client import connect as _connect

    return _connect()


#: How many lines of a dead node's log an error shows.
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class NodeRow:
    """One line of ``cmlab status``."""

    node: str
    az: str
    address: str
    role: str
    lag_bytes: int | None
    healthy: bool
    detail: str
    vips: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabStatus:
    """The lab at one moment: the engine's view plus who holds each VIP.

    :param vip_holders: VIP name -> nodes holding its address.
    :param not_ready: why the lab is not ready, or "" when it is.
    """

    lab: str
    engine: str
    cluster: ClusterState
    vip_holders: dict[str, list[str]]
    rows: list[NodeRow]
    not_ready: str

    @property
    def ready(self) -> bool:
        return not self.not_ready

    @property
    def primary(self) -> str | None:
        p = self.cluster.primaries
        return p[0] if len(p) == 1 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab, "engine": self.engine, "ready": self.ready, "not_ready": self.not_ready,
            "primary": self.primary, "vip_holders": self.vip_holders,
            "nodes": [r.__dict__ for r in self.rows],
        }


class Lab:
    """A lab: a plan, its engine, and its Docker objects.

    Build with :meth:`from_topology` (from a file) or :meth:`attach` (a lab
    already running, read back from Docker's labels).
    """

    def __init__(self, plan: LabPlan, engine: Engine, client: docker.DockerClient, progress: Progress | None = None,
                 owner: dict[str, str] | None = None, replan: Callable[[list], LabPlan] | None = None) -> None:
        self.plan = plan
        self.engine = engine
        self.client = client
        from cmlab.runtime.docker import DockerRuntime
        self.runtime = DockerRuntime.for_plan(plan, client, owner)
        self.progress = progress or Quiet()
        #: Resolves the topology again against the subnets taken now (see up()).
        self._replan = replan
        #: The last :meth:`up`'s phases: ``(what, seconds)``, in order; the wait for
        #: a ready cluster is split by each reason it gave for not being ready.
        self.up_phases: list[tuple[str, float]] = []
        #: An image the nodes run instead of the engine's recipe (a replay of a
        #: bundle that carries its images: loaded under the replay's own tag).
        self.node_image: str | None = None

    @classmethod
    def from_topology(cls, path: str | Path, registry: EngineRegistry | None = None, progress: Progress | None = None,
                      owner: dict[str, str] | None = None, name: str | None = None, engine: str | None = None,
                      allocate: bool = False, parameters: dict[str, Any] | None = None) -> "Lab":
        """Read and resolve a topology file (or an example, by name: ``quickstart``)
        against this host's Docker networks.

        :param owner: owner labels (:func:`cmlab.owner.current`) for a lab that
            ``reap`` may remove once its owner process is gone (test sessions).
        :param name: a lab name instead of the file's (parallel test workers).
        :param engine: an engine instead of the file's.
        :param allocate: ignore the file's subnets and addresses and allocate
            free ones (a copy of an example beside a lab of it).
        :param parameters: ``parameters:`` keys that win over the file's (the
            command line's ``--set``), checked as if written there.
        :raises TopologyError: the file cannot be used (nothing is created).
        :raises DockerUnavailable: Docker cannot be reached.
        """
        registry = registry or default_registry()
        from cmlab.runtime.docker import DockerRuntime
        client = connect()
        path = example_topology(path)
        data, positions = read_yaml_file(path)
        if isinstance(data, dict):
            data = {**data, **({"name": name} if name else {}), **({"engine": engine} if engine else {})}
            if allocate:
                data = resolve.without_addresses(data)
            data = resolve.with_parameters(data, parameters)

        routes = host_routes()

        def replan(taken: list) -> LabPlan:
            return resolve.plan_data(data, str(path), positions, registry, taken, routes)

        # Resolve once without Docker's subnets to learn the lab's name (and
        # hosts), then against every subnet but the lab's own (so `up` twice is
        # the same lab).
        first = replan([])
        plan = replan(DockerRuntime.for_plan(first, client).used_subnets(exclude_lab=first.name))
        return cls(plan, registry.get(plan.engine), client, progress, owner, replan)

    @classmethod
    def attach(cls, name: str, registry: EngineRegistry | None = None, progress: Progress | None = None) -> "Lab":
        """The running lab ``name``, read back from Docker.

        :raises LabError: no container of that lab carries its plan.
        """
        registry = registry or default_registry()
        from cmlab.runtime.docker import DockerRuntime
        client = connect()
        plan = DockerRuntime(client).read_plan(name) or saved_plan(name)
        if plan is None:
            raise LabError(f"no lab '{name}' on this Docker engine (running labs: {', '.join(labs(client)) or 'none'})")
        return cls(plan, registry.get(plan.engine), client, progress)

    @property
    def cluster(self) -> Cluster:
        """The engine bound to this lab (:mod:`cmlab.engines.cluster`), for its readings and abilities."""
        return attach(self.engine, self.plan, self.runtime.access(self.plan))

    @property
    def timing(self) -> Timing:
        return self.engine.timing(self.plan)

    # ---- lifecycle ------------------------------------------------------------------

    def build(self) -> str:
        """Build (or find) the engine image; returns its tag.

        :raises ImageBuildError: the build failed.
        """
        if self.node_image:
            return self.node_image
        inputs = self.engine.build_inputs(self.plan)
        from cmlab.images.build import ImageBuilder
        return ImageBuilder(self.client, self.progress).engine(self.engine.recipe, inputs).tag

    def up(self, wait: bool = True, init_swarm: bool = False, fresh: bool = False) -> LabStatus | None:
        """Create and start the lab, then wait until it is ready (one primary,
        healthy nodes, the VIP on the primary). Idempotent: a lab already up
        with the same plan is only waited for.

        Warm start: when the engine has one (:attr:`Engine.warm_start`), a
        snapshot of a ready cluster of the same key (see
        :mod:`cmlab.runtime.snapshots`) fills the nodes' volumes before they
        start; without one, the first ready cluster is saved (a warning, not
        an error, when that fails). Not for labs across hosts or replays.

        A lab across hosts first checks that its hosts form one swarm (see
        :func:`cmlab.runtime.hosts.ensure_swarm`) and copies the images to the
        hosts that lack them.

        :param wait: False: return once the containers run, without waiting.
        :param init_swarm: make the first host a swarm manager and join the
            others, where they are in no swarm.
        :param fresh: neither restore nor save a snapshot: initialise the cluster.
        :returns: the ready lab's status (None when not waiting).
        :raises LabError: a lab of that name runs with another plan, or
            creation failed (what was created is removed).
        :raises WaitTimeout: not ready within the engine's start deadline; the
            lab is left for inspection and ``down`` removes it.
        """
        from cmlab.images.build import ImageBuilder
        from cmlab.runtime.docker import network_lock
        from cmlab.runtime.hosts import ensure_swarm, ship_images

        phases = self.up_phases = []
        t = time.monotonic()
        image = self.build()
        builder = ImageBuilder(self.client, self.progress)
        router_image = builder.router().tag
        helper_image = builder.helper().tag if self.plan.hosts else ""
        t = _phase(phases, "images built or found", t)
        if self.runtime.hosts is not None:
            ensure_swarm(self.runtime.hosts, init_swarm, self.progress)
            ship_images(self.runtime.hosts, self.runtime.hosts.names, [image, router_image, helper_image], self.progress)
            t = _phase(phases, "swarm checked, images copied to the hosts", t)
        with network_lock():
            if self._replan is not None:
                # Subnets are chosen under the lock, against what is taken now.
                self.plan = self._replan(self.runtime.used_subnets(exclude_lab=self.plan.name))
            existing = self.runtime.read_plan(self.plan.name)
            if existing is not None and existing.digest != self.plan.digest:
                raise LabError(f"lab '{self.plan.name}' is already up with another topology; run `cmlab down {self.plan.name}` first")
            if self.plan.hosts:
                save_plan(self.plan)  # the plan as resolved under the lock: `down` and `status` find the hosts here
            containers = self.runtime.containers(self.plan.name)
            wanted = (len(self.plan.nodes) + (1 if self.plan.router else 0)
                      + sum(1 for a in self.plan.azs if a.access_address) + len(self.plan.hosts))
            complete = existing is not None and len(containers) == wanted and all(c.status == "running" for c in containers)
            warm = None if complete or fresh else self.snapshot_key(image)
            snapshot = None
            if warm is not None:
                from cmlab.runtime import snapshots
                snapshot = snapshots.find(self.client, warm)
            if not complete:
                self._create(image, router_image, helper_image, snapshot)
        t = _phase(phases, "lab found up" if complete else "containers created and started" + (
            f" from snapshot {snapshot.key}" if snapshot else ""), t)
        if not wait:
            return None

        last: str | None = None

        def starting() -> LabStatus:
            # Each reason the cluster is not ready yet, and how long it lasted: the engine's own phases.
            nonlocal t, last
            status = self._starting_status()
            if status.not_ready != last:
                if last is not None:
                    t = _phase(phases, f"not ready: {last}", t)
                last = status.not_ready
            return status

        with self.progress.step(f"waiting for a ready cluster (deadline {self.timing.start_s:.0f} s)"):
            try:
                status, _ = wait_for(starting, lambda s: s.ready, self.timing.start_s, self.timing.poll_s,
                                     "ready cluster", lambda s: s.not_ready)
            except WaitTimeout as exc:
                raise WaitTimeout(f"{exc}\nthe lab is left up for inspection (`cmlab status {self.plan.name}`, "
                                  f"`cmlab logs {self.plan.name} NODE`); `cmlab down {self.plan.name}` removes it") from None
        assert status.primary is not None
        t = _phase(phases, "ready seen", t)
        if snapshot is not None and self.engine.warm_start is not None:
            self.engine.warm_start.started(self.plan, self.runtime.access(self.plan))
            t = _phase(phases, "start-up settings of the snapshot undone", t)
        elif warm is not None:
            self._save_snapshot(warm, image, status.primary)
            t = _phase(phases, "snapshot saved", t)
        self.engine.prepare_clients(self.plan, self.runtime.access(self.plan), status.primary)
        _phase(phases, "clients prepared", t)
        return status

    def _starting_status(self) -> LabStatus:
        """:meth:`status`, while the lab starts: a node whose container has
        exited will not come up, so the wait ends at once with its log.

        :raises LabError: a node's container is not running (its log's tail
            in the message; the lab is left for inspection).
        """
        access = self.runtime.access(self.plan)
        dead = [n for n in self.plan.nodes if not access.running(n)]
        if dead:
            tail = self.logs(dead[0].name, tail=LOG_TAIL_LINES).rstrip() if self.runtime.container(dead[0]) else "(no container)"
            raise LabError(f"node(s) {', '.join(n.name for n in dead)} stopped while the lab was starting, so it cannot "
                           f"become ready; the last {LOG_TAIL_LINES} lines of {dead[0].name}'s log:\n{tail}\n"
                           f"the lab is left up for inspection (`cmlab logs {self.plan.name} {dead[0].name}`); "
                           f"`cmlab down {self.plan.name}` removes it")
        return self.status()

    def snapshot_key(self, image: str | None = None) -> str | None:
        """The key of this lab's warm-start snapshot (:mod:`cmlab.runtime.snapshots`),
        or None when it has no warm start (the engine has none, a lab across
        hosts, a replay's image).

        :param image: the nodes' image (default: :meth:`build`'s).
        """
        if self.engine.warm_start is None or self.plan.hosts or self.node_image:
            return None
        from cmlab.runtime import snapshots
        return snapshots.snapshot_key(self.plan, self.engine.warm_start, self.client.images.get(image or self.build()).id)

    def _save_snapshot(self, key: str, image: str, primary: str) -> None:
        """Save the ready cluster as snapshot ``key``, once however many labs
        of that key try; a failure is a warning (the lab is ready all the same)."""
        from cmlab.runtime import snapshots
        warm = self.engine.warm_start
        assert warm is not None
        access = self.runtime.access(self.plan)
        with self.progress.step(f"saving snapshot {key} for the next `up` of this topology"), snapshots.save_lock(key):
            if snapshots.find(self.client, key) is not None:
                return
            try:
                saved = warm.prepare(self.plan, access, primary)
                try:
                    snapshots.save(self.client, self.plan, key, image, self.client.images.get(image).id, saved)
                finally:
                    warm.cleanup(self.plan, access, saved)
            except CmlabError as exc:
                log.warning("lab %s: no snapshot saved, the next `up` initialises again: %s", self.plan.name, exc)

    def _create(self, image: str, router_image: str, helper_image: str = "", snapshot: "StoredSnapshot | None" = None) -> None:
        """Create and start every object of the lab, the nodes' volumes filled
        from ``snapshot`` first; on failure remove what was made."""
        from cmlab.runtime import disks

        if self.runtime.leftovers(self.plan.name) != {"containers": [], "networks": [], "volumes": []}:
            with self.progress.step(f"removing the incomplete lab '{self.plan.name}'"):
                self.runtime.remove(self.plan.name)
                disks.detach(self.plan.name)
        with self.progress.step(f"creating lab '{self.plan.name}' ({len(self.plan.nodes)} nodes, {len(self.plan.azs)} AZ)"):
            try:
                devices = disks.attach(self.plan.name, self.plan.disks)
                self.runtime.create_disk_volumes(self.plan, devices)
                self.runtime.create_networks(self.plan)
                router = self.runtime.create_router(self.plan, router_image)
                access = self.runtime.create_access(self.plan, helper_image, self.engine.client_ports(self.plan))
                access += self.runtime.create_helpers(self.plan, helper_image)
                nodes = {
                    node.name: self.runtime.create_node(self.plan, node, image, self.engine.container(self.plan, node), devices)
                    for node in self.plan.nodes
                }
                if snapshot is not None and self.engine.warm_start is not None:
                    from cmlab.runtime import snapshots
                    with self.progress.step(f"restoring snapshot {snapshot.key} (made by lab '{snapshot.lab}')"):
                        snapshots.restore(self.client, self.plan, image, snapshot, self.engine.warm_start.restore(self.plan))
                self.runtime.start(([router] if router is not None else []) + access)
                for group in self.engine.start_groups(self.plan):
                    self.runtime.start([nodes[n.name] for n in group])
                self.engine.after_start(self.plan, self.runtime.access(self.plan))
            except BaseException as exc:
                # Interrupted (SIGINT, SIGTERM) or failed: leave nothing half-made.
                self.runtime.remove(self.plan.name)
                disks.detach(self.plan.name)
                if isinstance(exc, (LabError, KeyboardInterrupt, SystemExit)):
                    raise
                raise LabError(f"creating lab '{self.plan.name}' failed, and what was created is removed: {exc}") from exc

    def down(self) -> Removed:
        """Heal every fault, then remove every object of the lab (by label).
        Safe to run twice."""
        return down(self.plan.name, self.client)

    def nemesis(self, seed: int | str | None = None) -> Nemesis:
        """The lab's faults (see :mod:`cmlab.faults.nemesis`)."""
        from cmlab.faults.nemesis import Nemesis
        return Nemesis(self.plan, self.runtime, self.engine, seed)

    # ---- observing ------------------------------------------------------------------

    def status(self) -> LabStatus:
        """The engine's view of the cluster and who holds each VIP."""
        cluster = self.cluster.snapshot()
        holders = self.runtime.vip_holders(self.plan)
        held: dict[str, list[str]] = {}
        for vip, nodes in holders.items():
            for n in nodes:
                held.setdefault(n, []).append(vip)
        rows = []
        for state in cluster.nodes:
            node = self.plan.node(state.name)
            rows.append(NodeRow(state.name, node.az, str(node.address), state.role.value, state.lag_bytes,
                                state.healthy, state.detail, held.get(state.name, [])))
        return LabStatus(self.plan.name, self.plan.engine, cluster, holders, rows,
                         cluster.not_ready or self._vip_problem(cluster, holders))

    def _vip_problem(self, cluster: ClusterState, holders: dict[str, list[str]]) -> str:
        primary = cluster.primaries[0] if len(cluster.primaries) == 1 else None
        for vip in self.plan.vips:
            want = [primary] if primary and self.plan.node(primary).az == vip.az else []
            if sorted(holders.get(vip.name, [])) != want:
                return f"VIP {vip.name} ({vip.address}) is on {holders.get(vip.name) or 'no node'}, wanted on {want or 'no node'}"
        return ""

    def diagnostics(self) -> dict[str, str]:
        """The manager's own account of the cluster (``cm_ctl query``/``show``,
        Patroni's /cluster): title -> text, as its tools print it."""
        return self.cluster.diagnostics()

    def wait_ready(self, deadline_s: float) -> LabStatus:
        """Wait until :meth:`status` says ready.

        :param deadline_s: seconds.
        :raises WaitTimeout: with the last status seen.
        """
        status, _ = wait_for(self.status, lambda s: s.ready, deadline_s, self.timing.poll_s,
                             "ready cluster", lambda s: s.not_ready)
        return status

    def ensure_ready(self) -> LabStatus:
        """Wait for a ready cluster; if it is not ready within the engine's
        start deadline, have the engine repair each unhealthy node (or, when
        every node is healthy, the primary: the fault is the cluster's, as a
        Patroni primary left asynchronous) and wait once more (between
        trials: a trial must start from a healthy cluster).

        :raises WaitTimeout: still not ready.
        """
        try:
            return self.wait_ready(self.timing.start_s)
        except WaitTimeout:
            status = self.status()
            cluster = self.cluster
            for node in to_repair(status):
                if not cluster.has("repair"):
                    log.warning("lab %s: %s is unhealthy (%s) and engine %s cannot repair it", self.plan.name, node,
                                status.not_ready, self.engine.name)
                    break
                log.warning("lab %s: repairing %s (%s)", self.plan.name, node, status.not_ready)
                cluster.repair(node)
            return self.wait_ready(self.timing.start_s)

    def wait_primary(self, deadline_s: float, not_on: str | None = None) -> tuple[str, float]:
        """Wait for exactly one primary (other than ``not_on``).

        :returns: ``(primary node, seconds waited)``.
        :raises WaitTimeout: none within ``deadline_s`` seconds.
        """
        def ok(c: ClusterState) -> bool:
            return len(c.primaries) == 1 and c.primaries[0] != not_on

        cluster, waited = wait_for(lambda: self.cluster.snapshot(), ok,
                                   deadline_s, self.timing.poll_s, "new primary", lambda c: f"primaries {c.primaries}")
        return cluster.primaries[0], waited

    def settled_primary(self, deadline_s: float) -> str:
        """The node the manager names primary (a quorum read) that also says,
        itself, that it is a running primary (a demoting one still says
        "primary" while it shuts down).

        :param deadline_s: seconds.
        :raises WaitTimeout: none within ``deadline_s`` (say, the quorum is
            electing a leader and cannot be read).
        """
        cluster = self.cluster

        def read() -> str | None:
            try:
                leader = cluster.leader()
            except EngineError:
                return None
            if not leader:
                return None
            state = cluster.node(leader)
            return leader if state.role is NodeRole.primary and state.healthy else None

        leader, _ = wait_for(read, lambda x: x is not None, deadline_s, self.timing.poll_s, "settled primary")
        assert leader is not None
        return leader

    def switchover(self, candidate: str) -> LabStatus:
        """Move the primary to ``candidate`` through the manager, and wait until
        the cluster is ready with it as primary (deadline: the engine's start
        deadline, seconds). It first waits, at most the engine's failover
        time, for a primary the manager can name: after a heal the quorum may
        still be electing its leader.

        :raises EngineError: the manager refused.
        :raises WaitTimeout: not done in time.
        """
        if self.settled_primary(self.timing.failover_s) != candidate:  # already there: nothing to ask
            self.cluster.switchover(candidate)
        status, _ = wait_for(self.status, lambda s: s.ready and s.primary == candidate, self.timing.start_s,
                             self.timing.poll_s, f"{candidate} as the ready primary", lambda s: s.not_ready or f"primary {s.primary}")
        return status

    def dsn(self, host: str) -> str:
        """A libpq connection string to ``host`` (node name, node address or VIP
        address), pointed where cmlab reaches it (a published port across hosts)."""
        try:
            host = str(self.plan.node(host).address)
        except KeyError:
            pass
        from cmlab.probes.probeset import client_dsn
        return client_dsn(self.engine, self.plan, self.runtime.access(self.plan), host)

    # ---- acting on nodes ----------------------------------------------------------------

    def exec(self, node: str, argv: list[str], user: str = "root") -> tuple[int, str]:
        """Run a command in a node's container: ``(exit code, output)``."""
        return self.runtime.access(self.plan).exec(self.plan.node(node), argv, user)

    def logs(self, node: str, tail: int | None = None) -> str:
        c = self.runtime.container(self.plan.node(node))
        if c is None:
            raise LabError(f"node {node} has no container")
        return c.logs(tail=tail if tail is not None else "all").decode(errors="replace")

    def kill(self, node: str, signal: str = "SIGKILL") -> None:
        """``docker kill`` a node's container (the whole host dies at once)."""
        c = self.runtime.container(self.plan.node(node))
        if c is None:
            raise LabError(f"node {node} has no container")
        c.kill(signal=signal)


def _phase(phases: list[tuple[str, float]], what: str, since: float) -> float:
    """Record a phase of :meth:`Lab.up` that began at ``since`` (monotonic seconds); returns now."""
    now = time.monotonic()
    phases.append((what, round(now - since, 3)))
    return now


def labs(client: docker.DockerClient | None = None) -> list[str]:
    """Names of the labs on this Docker engine, and of the labs across hosts started from here."""
    from cmlab.runtime.docker import DockerRuntime
    return sorted(set(DockerRuntime(client or connect()).labs()) | set(saved_labs()))


def to_repair(status: LabStatus) -> list[str]:
    """The nodes :meth:`Lab.ensure_ready` has the engine repair in a lab that is
    not ready: the unhealthy ones and the standbys that stream nothing; when
    every node is fine, the primary (the fault is the cluster's)."""
    sick = [row.node for row in status.rows if not row.healthy or (
        row.role not in (NodeRole.primary.value, NodeRole.quorum.value) and row.lag_bytes is None)]
    if sick or status.ready or not status.primary:
        return sick
    return [status.primary]


def down(name: str, client: docker.DockerClient | None = None, forget: bool = False) -> Removed:
    """Heal the lab's faults, then remove every object labelled
    ``cmlab.lab=<name>`` and the lab's state; works from labels alone, with no
    topology file. Safe to run twice.

    A lab across hosts keeps its saved plan while one of its hosts cannot be
    reached (:attr:`Removed.unreachable`), so that ``down`` can finish later;
    ``forget``: drop it anyway (the host is gone for good, and so is what was on it).
    """
    from cmlab.images.tags import remove_replay_tags
    from cmlab.runtime import disks
    from cmlab.runtime.docker import DockerRuntime, Removed
    client = client or connect()
    plan = DockerRuntime(client).read_plan(name) or saved_plan(name)
    runtime = DockerRuntime.for_plan(plan, client) if plan is not None else DockerRuntime(client)
    if plan is not None:
        try:
            Lab(plan, default_registry().get(plan.engine), client).nemesis().heal()
        except Exception as exc:  # noqa: BLE001 - removal below takes the faults with the containers
            log.warning("lab %s: heal before down failed (%s); removing anyway", name, exc)
    removed = runtime.remove(name)
    if plan is not None and removed.unreachable:
        # Say what may remain on each host not reached: the containers the lab made there.
        removed = replace(removed, unreachable={
            host: f"{why}; the lab's containers there: {', '.join(DockerRuntime.made_on(plan, host))}, with their volumes"
            for host, why in removed.unreachable.items()})
    detached = disks.detach(name)
    remove_replay_tags(client, name)  # images a replay loaded under the lab's name
    if removed.unreachable and not forget:
        # Its objects may remain there: keep the plan, so that `down` can be run again.
        for host, why in removed.unreachable.items():
            log.warning("lab %s: host %s not reached, its objects of the lab are left there (%s); "
                        "run `cmlab down %s` again once it answers", name, host, why, name)
    else:
        remove_lab_state(name)
    return Removed(removed.containers, removed.networks, removed.volumes, detached, removed.unreachable, removed.left)


def snapshots(client: docker.DockerClient | None = None) -> tuple[list[StoredSnapshot], list[str]]:
    """The snapshots a warm ``up`` restores (oldest first), and the keys of
    incomplete ones (a save cut short or under way); see :mod:`cmlab.runtime.snapshots`."""
    from cmlab.runtime import snapshots as _snapshots
    return _snapshots.stored(client or connect())


def prune_snapshots(keys: list[str] | None = None, client: docker.DockerClient | None = None) -> int:
    """Remove the snapshots ``keys`` (None: every one, incomplete ones too);
    the next ``up`` of their topologies initialises its cluster again.

    :returns: how many Docker volumes were removed.
    :raises LabError: one is being restored (try again once that ``up`` is done).
    """
    from cmlab.runtime import snapshots as _snapshots
    return _snapshots.remove(client or connect(), keys)


def reap(client: docker.DockerClient | None = None, dry_run: bool = False) -> list[str]:
    """Remove every lab whose owner process is gone (a crashed test run);
    labs without an owner (made at a terminal) and labs of live owners stay.

    :returns: the names of the labs removed (or that would be, with ``dry_run``).
    """
    from cmlab import owner

    from cmlab.runtime.docker import DockerRuntime
    client = client or connect()

    def owners(lab: str) -> dict[str, str]:
        plan = saved_plan(lab)  # a lab across hosts: its objects (and owner labels) are on its hosts
        runtime = DockerRuntime.for_plan(plan, client) if plan is not None else DockerRuntime(client)
        try:
            return runtime.owner_labels(lab)
        except LabError:
            return {}  # a host does not answer: the owner cannot be told, so the lab stays

    dead = [lab for lab in labs(client) if owner.alive(owners(lab)) is False]
    if not dry_run:
        for lab in dead:
            down(lab, client)
    return dead
