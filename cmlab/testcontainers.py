"""A cmlab lab for suites written with testcontainers-python, unittest or behave.

testcontainers-python starts one container per object (``PostgresContainer``),
waits with a wait strategy, hands out a connection URL and removes it at the
end; :class:`CmlabCluster` does the same for a whole cluster (every node, its
networks, VIPs and disks) and adds what cmlab is for: faults and measured runs::

    from cmlab.testcontainers import CmlabCluster

    with CmlabCluster("quickstart") as cluster:
        url = cluster.get_connection_url()       # through the VIP the primary holds
        with cluster.fault("kill", target="primary", process="database"):
            ...                                  # the primary's database killed
        run = cluster.run("kill-primary")        # a measured trial, its report written
        assert run.passed, run.report["trials"]

Reused from testcontainers-python (an optional dependency: ``pip install
'cmlab[testcontainers]'``): its :class:`WaitStrategy` (``with_startup_timeout``,
``with_poll_interval``, ``waiting_for``: a suite tunes the wait as it does for any
container), and the conventions: ``start()`` returns the object, ``stop()``,
a context manager, ``get_connection_url()``, ``get_container_host_ip()``,
``get_exposed_port()``, ``get_logs()``.

Not reused, and why: Ryuk, the library's reaper, removes containers, networks
and volumes by label when the test process dies, but a lab also holds loop
devices, host routes and nftables tables that Ryuk cannot remove (and its
image must be pulled). A lab here carries cmlab's owner labels instead (this
process, as the pytest plugin's labs do), and ``cmlab reap`` or the next
``cmlab up`` removes the lab of a process that died. ``DockerCompose`` is not
used: a lab is not a compose project (per-AZ networks with fixed subnets,
routes, VIPs, loop devices, an engine that knows when the cluster is ready).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict
from testcontainers.core.waiting_utils import WaitStrategy

from cmlab import api
from cmlab.errors import CmlabError, LabError


class ClusterReady(WaitStrategy):
    """Waits until the lab is ready: one primary, every node healthy, each
    VIP on the primary (the same check as ``cmlab up``). Its startup timeout
    is the engine's start deadline unless the suite sets one
    (``with_startup_timeout``, seconds).
    """

    def __init__(self) -> None:
        super().__init__()
        self._timeout_given = False

    def with_startup_timeout(self, timeout: Any) -> "ClusterReady":
        self._timeout_given = True
        super().with_startup_timeout(timeout)
        return self

    def wait_until_ready(self, container: Any) -> None:
        """:raises WaitTimeout: not ready in time (the last reason in the message)."""
        lab = container.lab
        deadline_s = float(self._startup_timeout) if self._timeout_given else lab.timing.start_s
        lab.wait_ready(deadline_s)


class CmlabCluster:
    """One cmlab lab as a testcontainers-style object.

    :param topology: a topology file, or an example's name (``quickstart``).
    :param name: the lab's name (default: the topology's ``name:``).
    :param parameters: engine parameters set over the topology's (as ``--set``).
    :param fresh: initialise the cluster, no warm start from a snapshot.
    :raises CmlabError: the topology is invalid, or Docker cannot be reached
        (the message names the file and place, and the fix).
    """

    def __init__(self, topology: str | Path = "quickstart", name: str | None = None,
                 parameters: dict[str, Any] | None = None, fresh: bool = False) -> None:
        self.lab = api.Lab.from_topology(topology, name=name, parameters=parameters, owner=api.current_owner())
        self.fresh = fresh
        self._wait: WaitStrategy = ClusterReady()
        self._started = False

    # ---- life cycle, as testcontainers' containers -------------------------------------

    def waiting_for(self, strategy: WaitStrategy) -> "CmlabCluster":
        """Wait with ``strategy`` in :meth:`start` (default: :class:`ClusterReady`)."""
        self._wait = strategy
        return self

    def start(self) -> "CmlabCluster":
        """Build or find the images, create and start the lab, and wait with
        the wait strategy.

        :raises LabError: creation failed (what was created is removed).
        :raises WaitTimeout: not ready in time; the lab is removed.
        """
        self.lab.up(wait=False, fresh=self.fresh)
        self._started = True
        try:
            self._wait.wait_until_ready(self)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Heal every fault and remove every object of the lab. Safe to call twice."""
        if self._started:
            self._started = False
            self.lab.down()

    def __enter__(self) -> "CmlabCluster":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- where clients connect ----------------------------------------------------------

    def get_connection_url(self, driver: str | None = None) -> str:
        """A ``postgresql://`` URL for a client writing to the cluster: through
        the VIP the primary holds, else to the primary's node (``driver``:
        ``postgresql+<driver>://``, as testcontainers' ``PostgresContainer``).

        :raises LabError: the lab has no primary now.
        """
        fields = conninfo_to_dict(self.lab.dsn(self._writer_host()))
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        auth = quote(str(fields.get("user", "")), safe="")
        if fields.get("password"):
            auth += ":" + quote(str(fields["password"]), safe="")
        return f"{scheme}://{auth}@{fields['host']}:{fields['port']}/{quote(str(fields.get('dbname', '')), safe='')}"

    def get_container_host_ip(self) -> str:
        """The address where a client reaches the writer (VIP or primary)."""
        return str(conninfo_to_dict(self.lab.dsn(self._writer_host()))["host"])

    def get_exposed_port(self, port: int) -> int:
        """The port where ``port`` of a node is reached: the same on one host
        (the lab's addresses are routed from it); across hosts, a published port."""
        return int(conninfo_to_dict(self.lab.dsn(self._writer_host()))["port"]) if port == self._db_port() else port

    def get_logs(self, node: str | None = None) -> tuple[bytes, bytes]:
        """A node's log (default: the primary's), as testcontainers returns it: ``(stdout, stderr)``."""
        return self.lab.logs(node or self.primary).encode(), b""

    def get_wrapped_container(self) -> Any:
        """The primary's Docker container (docker SDK object)."""
        return self.lab.runtime.container(self.lab.plan.node(self.primary))

    @property
    def primary(self) -> str:
        """The primary's node name now.

        :raises LabError: the manager names none.
        """
        status = self.lab.status()
        if status.primary is None:
            raise LabError(f"lab '{self.lab.plan.name}' has no primary now: {status.not_ready}")
        return status.primary

    def _writer_host(self) -> str:
        status = self.lab.status()
        if status.primary is None:
            raise LabError(f"lab '{self.lab.plan.name}' has no primary now: {status.not_ready}")
        for vip in self.lab.plan.vips:
            if status.vip_holders.get(vip.name) == [status.primary]:
                return str(vip.address)
        return status.primary

    def _db_port(self) -> int:
        return int(conninfo_to_dict(self.lab.dsn(str(self.lab.plan.nodes[0].address)))["port"])

    # ---- what cmlab adds ----------------------------------------------------------------

    def fault(self, kind: str, **arguments: Any) -> "AppliedFault":
        """Apply a fault of ``kind`` (a name of ``cmlab faults --kinds``; the
        arguments are its CLI options' names: ``target``, ``process``,
        ``percent``...). Use the result as a context manager, or ``heal()`` it.

        :raises ValueError: no such kind. :raises FaultError: the arguments name
            nothing in this lab, or the fault could not be applied (nothing is left applied).
        :raises Unsupported: this host cannot make it (the message names what it lacks).
        """
        nemesis = self.lab.nemesis()
        applied = nemesis.apply(nemesis.build(kind, **arguments))
        return AppliedFault(nemesis, applied)

    def heal(self) -> None:
        """Undo every fault in effect on the lab."""
        self.lab.nemesis().heal()

    def run(self, scenario: str | Path, trials: int = 1, seed: int | None = None,
            directory: Path | None = None) -> Any:
        """Run a scenario (a built-in's name or a scenario file) and write its
        report; returns the run (``passed``, ``report``: report.json as a dict,
        ``trials``: each with its ``metrics``, ``directory``).

        :raises ScenarioError: the scenario is invalid or needs what this lab lacks.
        """
        return api.run(self.lab, api.scenario(str(scenario)), trials=trials, seed=seed, directory=directory)


class AppliedFault:
    """A fault in effect; leaving its ``with`` block (or :meth:`heal`) undoes it."""

    def __init__(self, nemesis: Any, applied: Any) -> None:
        self._nemesis, self.applied = nemesis, applied
        self.healed = False

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes the fault was resolved to."""
        return tuple(getattr(self.applied.fault, "nodes", ()))

    def heal(self) -> None:
        """Undo this fault. Safe to call twice.

        :raises CmlabError: it could not be undone (say so, not swallowed).
        """
        if not self.healed:
            self._nemesis.undo(self.applied.fault.key)
            self.healed = True

    def __enter__(self) -> "AppliedFault":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.heal()


__all__ = ["AppliedFault", "ClusterReady", "CmlabCluster", "CmlabError"]
