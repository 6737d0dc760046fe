"""The engine contract: what a cluster manager supplies to the lab.

An engine is to cmlab what a kind is to containerlab. The core (topology,
images, runtime, faults, probes, reports) never names an engine; it asks the
engine for:

* its parameters (a pydantic model with lab defaults) and its own topology
  rules (:meth:`Engine.check`);
* its image recipe (:attr:`Engine.recipe`, a folder under ``images/``);
* what each node's container runs (:meth:`Engine.container`);
* its timing (:meth:`Engine.timing`), from which every wait derives its deadline;
* how to read the cluster's roles and health (:meth:`Engine.observe`), the
  leader (:meth:`Engine.leader`) and one node's own view (:meth:`Engine.observe_node`);
* the names of its processes by duty (:attr:`Engine.processes`), so that a
  fault can target "the database" or "the agent" on any engine;
* how a client connects (:meth:`Engine.dsn`).

What an engine may do beyond that (switchover, repair, its own diagnostics
and events, cheaper readings) are the optional abilities of
:mod:`cmlab.engines.cluster`, which also binds an engine to a running lab.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from collections.abc import Callable
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from cmlab.errors import Issue

if TYPE_CHECKING:
    from pathlib import Path

    from cmlab.topology.plan import LabPlan, NodePlan
    from cmlab.topology.schema import Topology


class NodeRole(StrEnum):
    """A node's role as the cluster manager sees it, in the field's words."""

    primary = "primary"
    sync_standby = "sync standby"
    standby = "standby"
    cascade_standby = "cascade standby"
    quorum = "quorum"  # a quorum-only node (etcd member, CMS without a DN)
    unknown = "unknown"  # running, but the manager does not (yet) say
    down = "down"  # the container is not running

    @classmethod
    def _missing_(cls, value: object) -> "NodeRole | None":
        # Histories and bundles written before the word changed say "arbiter".
        return cls.quorum if value == "arbiter" else None


@dataclass(frozen=True)
class NodeState:
    """One node as observed at one moment.

    :param lag_bytes: replication lag of a standby in bytes (None when unknown
        or not a standby).
    :param healthy: the engine's own health verdict for this node.
    :param detail: the engine's state word (e.g. Patroni's ``running``).
    """

    name: str
    role: NodeRole
    healthy: bool
    lag_bytes: int | None = None
    timeline: int | None = None
    detail: str = ""
    #: On a primary: the standbys streaming from it now.
    followers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterState:
    """The whole cluster as the engine sees it at one moment."""

    nodes: tuple[NodeState, ...]
    #: Why the cluster is not ready (empty when it is), in one sentence.
    not_ready: str = ""

    @property
    def primaries(self) -> list[str]:
        return [n.name for n in self.nodes if n.role is NodeRole.primary]

    @property
    def ready(self) -> bool:
        return not self.not_ready

    def node(self, name: str) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class Timing:
    """Deadlines derived from the engine's own timing parameters, in seconds.

    :param start_s: from containers started to a ready cluster.
    :param failover_s: from the primary's loss to a new primary accepting writes.
    :param vip_s: from a new primary to the VIP on it.
    :param vip_repair_s: from the VIP taken off the primary behind the
        manager's back to the manager putting it back.
    :param poll_s: how often waits poll the cluster.
    :param quorum_leader_loss_s: from the quorum's leader cut off from every
        other node to a primary accepting writes again. The primary's manager
        may lose its store while the quorum elects a new leader and demote
        itself; None: no longer than ``failover_s``.
    :param frozen_primary_s: from the primary's database processes stopped
        (SIGSTOP: alive, silent) to a primary accepting writes again, when the
        manager detects that more slowly than a dead one; None: ``failover_s``.
    """

    start_s: float
    failover_s: float
    vip_s: float
    vip_repair_s: float = 0.0
    poll_s: float = 0.2
    quorum_leader_loss_s: float | None = None
    frozen_primary_s: float | None = None

    @property
    def quorum_leader_loss_bound_s(self) -> float:
        """:attr:`quorum_leader_loss_s`, or :attr:`failover_s` when the engine gives none, seconds."""
        return self.failover_s if self.quorum_leader_loss_s is None else self.quorum_leader_loss_s

    @property
    def frozen_primary_bound_s(self) -> float:
        """:attr:`frozen_primary_s`, or :attr:`failover_s` when the engine gives none, seconds."""
        return self.failover_s if self.frozen_primary_s is None else self.frozen_primary_s


@dataclass(frozen=True)
class FileSpec:
    """A file written into a container before it starts."""

    content: str | bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class ContainerSpec:
    """What one node's container runs; the runtime adds image, names, labels,
    networks, addresses and routes.

    :param volumes: mount point -> volume suffix; the runtime names the volume
        ``<container>-<suffix>`` and labels it with the lab.
    """

    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileSpec] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    security_opt: list[str] = field(default_factory=list)


class NodeAccess(Protocol):
    """How an engine reaches the nodes of a running lab (supplied by the runtime)."""

    def http_get(self, node: "NodePlan", port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
        """GET ``http://<node address>:<port><path>``: ``(status, body)``.
        Raises ``OSError`` when the node does not answer."""
        ...

    def http_json(self, node: "NodePlan", port: int, path: str, timeout_s: float) -> Any:
        """GET ``http://<node address>:<port><path>`` and decode JSON.
        Raises ``OSError`` (or a subclass) when the node does not answer."""
        ...

    def http_post(self, node: "NodePlan", port: int, path: str, body: Any, timeout_s: float, method: str = "POST") -> tuple[int, str]:
        """Send JSON (POST, or ``method``) to ``http://<node address>:<port><path>``: ``(status, body text)``."""
        ...

    def exec(self, node: "NodePlan", argv: list[str], user: str = "root") -> tuple[int, str]:
        """Run a command in the node's container: ``(exit code, output)``."""
        ...

    def running(self, node: "NodePlan") -> bool:
        """Whether the node's container is running."""
        ...

    # Optional: ``stream(node, argv, user="root") -> Iterator[str]`` runs a long-lived
    # command and yields its output lines (the Docker runtime has it; an engine
    # checks with ``getattr``). One exec for many readings: see opengauss_cm.reader.


@dataclass(frozen=True)
class BuildInputs:
    """Files an engine adds to its image's build context (the user's packages).

    :param files: name in the build context -> file or directory on this host.
    :param args: Docker build arguments.
    :param digest: a hash of the inputs, part of the image's content-hash tag.
    :param base_image: an image of the user's to build on (``BASE_IMAGE``)
        instead of cmlab's Debian base; it must be here already (no registry
        is assumed). The recipe still gets cmlab's base as ``CMLAB_BASE``.
    """

    files: dict[str, "Path"] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    base_image: str | None = None


@dataclass(frozen=True)
class ImageRecipe:
    """An engine image: a folder under ``images/`` with a Dockerfile that
    starts ``FROM ${BASE_IMAGE}`` (the Debian base cmlab bootstraps, unless
    the engine's :class:`BuildInputs` name another; cmlab's base is then
    ``CMLAB_BASE``, to copy tini and cmlab-init from)."""

    name: str
    folder: str


@dataclass(frozen=True)
class SavedDir:
    """A directory a warm-start snapshot keeps: ``path`` inside the volume
    ``volume`` (a suffix of :attr:`ContainerSpec.volumes`) of ``node``, made
    there by :meth:`WarmStart.prepare` (``""``: the volume's whole content)."""

    node: str
    volume: str
    path: str = ""


class WarmStart(ABC):
    """An engine's way to save a ready cluster and start a lab from it
    instead of initialising it (``cmlab up`` restores a snapshot when the
    topology, parameters and image are the same; see
    :mod:`cmlab.runtime.snapshots`).

    A snapshot is taken while the cluster runs and is restored into a lab
    whose name, subnets and addresses may differ: what the engine saves must
    not depend on them, or the engine rewrites them when the nodes start.
    """

    #: Raise it when what is saved or how it is restored changes: older
    #: snapshots then no longer match (it is part of the snapshot's key).
    format: ClassVar[int] = 1

    @abstractmethod
    def prepare(self, plan: "LabPlan", access: NodeAccess, primary: str) -> dict[str, SavedDir]:
        """Make consistent copies of what a restore needs, inside the nodes'
        volumes, while the cluster runs.

        :param primary: the ready cluster's primary.
        :returns: name (a short word) -> where the copy is.
        :raises EngineError: a copy could not be made (the lab is left as it was).
        """

    def cleanup(self, plan: "LabPlan", access: NodeAccess, saved: dict[str, SavedDir]) -> None:
        """Remove what :meth:`prepare` made once it is saved. Default: nothing."""

    @abstractmethod
    def restore(self, plan: "LabPlan") -> dict[tuple[str, str], str]:
        """Which volumes a restore fills before the nodes start:
        ``(node, volume suffix) -> saved name``; volumes not named start empty."""

    def started(self, plan: "LabPlan", access: NodeAccess) -> None:
        """Runs once a lab started from a snapshot is ready, before ``up``
        returns: undo what only the start needed, so that the lab runs as a
        fresh one would. Default: nothing.

        :raises EngineError: it could not be undone (``up`` fails: the lab
            would not be the one asked for).
        """


class PrimaryBackup(WarmStart):
    """A warm start that saves one backup of the primary's data, made with
    the database's own tool while the cluster runs, into a folder of the
    primary's volume that mirrors the volume's layout, and restores it into
    that volume of every database node (the engine rewrites what carries
    addresses or names when the nodes start).
    """

    #: The node volume (a suffix of :attr:`ContainerSpec.volumes`) and where it is mounted.
    volume: ClassVar[str]
    mount: ClassVar[str]
    #: The backup's folder inside the volume.
    folder: ClassVar[str] = ".cmlab-snapshot"

    @abstractmethod
    def backup(self, plan: "LabPlan", access: NodeAccess, primary: str, root: str) -> None:
        """Make the backup under ``root`` (the folder, a path inside the primary's
        container), laid out as the volume is.

        :raises EngineError: the backup failed (its output in the message).
        """

    def prepare(self, plan: "LabPlan", access: NodeAccess, primary: str) -> dict[str, SavedDir]:
        self.backup(plan, access, primary, f"{self.mount}/{self.folder}")
        return {self.volume: SavedDir(primary, self.volume, self.folder)}

    def cleanup(self, plan: "LabPlan", access: NodeAccess, saved: dict[str, SavedDir]) -> None:
        where = saved[self.volume]
        access.exec(plan.node(where.node), ["rm", "-rf", f"{self.mount}/{where.path}"])

    def restore(self, plan: "LabPlan") -> dict[tuple[str, str], str]:
        from cmlab.topology.schema import Role

        return {(n.name, self.volume): self.volume for n in plan.nodes_with(Role.database)}


@dataclass(frozen=True)
class Snapshot:
    """The manager's leader (None: it names none) and every node's state,
    from one reading (:meth:`Engine.snapshot_reader`)."""

    leader: str | None
    nodes: tuple[NodeState, ...]


@dataclass(frozen=True)
class HttpReading:
    """A reading taken with one GET, tried on each endpoint in turn until one
    answers: what lets the probes take a reading every 20 ms without a thread
    of its own (:class:`cmlab.probes.http_poller.HttpPoller`), and the
    engine take the same reading the blocking way (:meth:`take`).

    :param endpoints: ``(node, port)`` pairs, in order.
    :param path: the request's path and query.
    :param timeout_s: deadline per endpoint, seconds.
    :param parse: ``(status, body) -> value``; raises ``ValueError`` when the
        answer does not count (the next endpoint is asked).
    :param failure: the message when no endpoint answered.
    :param unanswered: the value the probes record when no endpoint answered
        (None: the error ``failure``).
    """

    endpoints: tuple[tuple["NodePlan", int], ...]
    path: str
    timeout_s: float
    parse: Callable[[int, bytes], Any]
    failure: str
    unanswered: Callable[[], Any] | None = None

    def take(self, access: NodeAccess) -> Any:
        """The value from the first endpoint that answers.

        :raises EngineError: none answered (``failure``).
        """
        from cmlab.errors import EngineError

        for node, port in self.endpoints:
            try:
                return self.parse(*access.http_get(node, port, self.path, self.timeout_s))
            except (OSError, ValueError):
                continue
        raise EngineError(self.failure)


#: A key cmlab writes into a database's or a manager's configuration
#: (``postgresql.conf``, ``cm_agent.conf``), or passes to its tools (``cm_ctl
#: set -k KEY=...``): a bare identifier, so that no character can end the
#: statement it stands in (a sed address, a shell word, a conf line).
ConfigKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", max_length=63)]
#: Text of a configuration value: one line (no control character, which would
#: start another statement), at most 1024 characters; quoted where written.
ConfigText = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=1024)]
CONFIG_KEY_HINT = "a key is letters, digits and _, with at most one dot (work_mem, cmlab.node)"
CONFIG_TEXT_HINT = "write the value on one line (it is written quoted into the configuration file)"
#: Places pydantic adds to an error's location inside a union or a dict key.
_UNION_MEMBERS = {"constrained-str", "str", "int", "float", "bool", "[key]"}
#: A configuration value: text, a whole number, a finite number or a boolean.
ConfigValue = ConfigText | int | Annotated[float, Field(allow_inf_nan=False)] | bool
#: Key words of configuration keys whose value a manager runs as a command or
#: loads as code (CM's ``event_triggers`` scripts, and the like).
COMMAND_KEY = re.compile(r"command|script|trigger|hook|callback|exec|librar", re.IGNORECASE)


class Engine(ABC):
    """Base class of the engines. Subclasses set the class attributes and
    implement the abstract methods; see :mod:`cmlab.engines.postgres_patroni`."""

    #: The name used in topology files (``engine: <name>``).
    name: ClassVar[str]
    #: One line for ``cmlab engines``.
    summary: ClassVar[str]
    #: The pydantic model of ``parameters:``; its defaults are the lab defaults.
    Parameters: ClassVar[type[BaseModel]]
    #: Process duty -> process name in the container, e.g.
    #: ``{"database": "postgres", "agent": "patroni", "quorum": "etcd"}``.
    processes: ClassVar[dict[str, str]]
    recipe: ClassVar[ImageRecipe]
    #: SQL expression with which a database node names itself in the probes' rows.
    node_identity_sql: ClassVar[str] = "current_setting('cmlab.node', true)"
    #: Open files a process of the engine insists on (None: no demand), and what
    #: the engine does on a host whose Docker daemon allows fewer (``cmlab doctor``).
    open_files_wanted: ClassVar[tuple[int, str] | None] = None
    #: Parameters that name something on the host cmlab runs on (a file, a
    #: folder, an image): a replayed bundle may not choose them, the user
    #: gives them again (``cmlab replay --set``).
    host_inputs: ClassVar[tuple[str, ...]] = ()
    #: How a ready cluster is saved and restored (None: every ``up`` initialises).
    warm_start: ClassVar[WarmStart | None] = None

    def command_parameters(self, params: dict[str, Any]) -> list[str]:
        """The resolved parameters (dotted: ``postgresql.archive_command``) whose
        value the cluster runs as a command or loads as code: a replayed
        bundle's need ``--trust-commands``. Default: none."""
        return []

    def resolve_parameters(self, raw: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
        """Validate ``parameters:`` and fill in defaults.

        :returns: ``(parameters as JSON-able dict, issues)``: one issue a place
            (a value that matches no member of a union is one problem, not four).
        """
        try:
            return self.Parameters.model_validate(raw).model_dump(mode="json"), []
        except ValidationError as exc:
            issues: dict[str, Issue] = {}
            for err in exc.errors():
                loc = [p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_MEMBERS)]
                where = "parameters" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in loc)
                msg, fix = err["msg"].removeprefix("Value error, "), ""
                if err["type"] == "extra_forbidden":
                    msg, fix = "unknown parameter", f"known parameters: {', '.join(self.Parameters.model_fields)}"
                elif "[key]" in err["loc"]:
                    msg, fix = f"'{loc[-1]}' is not a configuration key", CONFIG_KEY_HINT
                elif err["type"] == "string_pattern_mismatch" and "x00" in str(err.get("ctx", {}).get("pattern", "")):
                    msg, fix = "a value holds a newline or another control character", CONFIG_TEXT_HINT
                issues.setdefault(where, Issue(where, msg, fix))
            return {}, list(issues.values())

    def params(self, plan: "LabPlan") -> BaseModel:
        """The plan's parameters as the engine's model."""
        return self.Parameters.model_validate(plan.parameters)

    @abstractmethod
    def check(self, topo: "Topology", params: dict[str, Any]) -> list[Issue]:
        """The engine's own topology rules (quorum size, timing rules...)."""

    @abstractmethod
    def container(self, plan: "LabPlan", node: "NodePlan") -> ContainerSpec:
        """What the node's container runs and the configuration it is given."""

    def build_inputs(self, plan: "LabPlan") -> BuildInputs:
        """What the image needs beyond its recipe folder (default: nothing).

        :raises ImageBuildError: the inputs are missing or wrong.
        """
        return BuildInputs()

    def start_groups(self, plan: "LabPlan") -> list[list["NodePlan"]]:
        """The order in which node containers start: each group starts after
        the previous one is running. Default: all nodes at once (Patroni and
        etcd sort themselves out; CM's om_monitor does too)."""
        return [list(plan.nodes)]

    def after_start(self, plan: "LabPlan", access: NodeAccess) -> None:
        """Runs once every container has started, before the wait for a ready
        cluster (e.g. per-node ``cm_ctl set -n <id>`` where CM would use ssh).
        Default: nothing."""

    def prepare_clients(self, plan: "LabPlan", access: NodeAccess, primary: str) -> None:
        """Runs once the cluster is first ready: make what clients (the probes)
        need, e.g. a SQL user and its access rules. Default: nothing."""

    @abstractmethod
    def timing(self, plan: "LabPlan") -> Timing:
        """Deadlines derived from the plan's timing parameters."""

    @abstractmethod
    def observe(self, plan: "LabPlan", access: NodeAccess) -> ClusterState:
        """Read the cluster's roles and health. Never raises for an
        unreachable node: it is reported as down or unknown."""

    @abstractmethod
    def leader(self, plan: "LabPlan", access: NodeAccess) -> str | None:
        """The node the manager names primary now, as its consensus store says
        (Patroni's leader key, CM's CMS view); None when it names none. Raises
        :class:`cmlab.errors.EngineError` when it cannot be read (unknown is
        not "none"). The measurement layer polls it: the manager's *detection*
        of a lost primary is the moment it stops naming it."""

    #: The shortest interval at which the probes may take this engine's
    #: readings, seconds (0: the probes' own cadence). An engine whose every
    #: reading is a ``docker exec`` sets it, and says what one costs.
    min_reading_interval_s: ClassVar[float] = 0.0

    @abstractmethod
    def observe_node(self, plan: "LabPlan", node: "NodePlan", access: NodeAccess) -> NodeState:
        """One node's own view of itself (role, health, and on a primary its
        followers). Never raises: an unreachable node is ``unknown``."""

    def cascade_standbys(self, plan: "LabPlan") -> list[str]:
        """The database nodes that run as cascade standbys in ``plan``. Default: none."""
        return []

    @abstractmethod
    def dsn(self, plan: "LabPlan", host: str) -> str:
        """A libpq connection string for a client writing to ``host`` (a node
        address or a VIP)."""

    def client_ports(self, plan: "LabPlan") -> tuple[int, ...]:
        """The TCP ports of a node that cmlab itself connects to (its probes,
        its readings): on a lab across hosts, each is published through the
        AZ's access container. Default: the database port of :meth:`dsn`."""
        from psycopg.conninfo import conninfo_to_dict

        return (int(conninfo_to_dict(self.dsn(plan, "0.0.0.0"))["port"]),)
