"""Every fault kind, one entry each (:data:`KINDS`): the word a scenario's
``fault:`` step and ``cmlab fault`` use, what it does, its arguments with
their types and help, and the :class:`~cmlab.faults.nemesis.Nemesis` method
that builds it. The CLI's ``fault`` commands, the scenario schema's check of
a ``fault:`` step and the docs' table (:func:`markdown_table`) are read from
here, so adding a fault is its class, its builder, and one entry.

Light on purpose: no fault module (pyroute2) is imported here, so that
``cmlab fault --help`` and ``cmlab check-scenario`` stay quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The words a target may be (see :mod:`cmlab.faults.targets`).
TARGET = "a target: a node, az:NAME, primary, standbys, sync-standby, quorum-leader, one, minority... (`cmlab fault --help`)"
DIRECTIONS = ("egress", "ingress", "both")


@dataclass(frozen=True)
class Arg:
    """One argument of a fault kind.

    :param name: the builder's keyword (``one_way``); a scenario writes it
        with dashes (``one-way``), the CLI as ``--one-way`` or, when
        ``positional``, as an argument (``TARGET``).
    :param kind: ``str``, ``float``, ``bool`` or ``list`` (several strings:
        repeated on the CLI, a YAML list or one string in a scenario).
    """

    name: str
    help: str
    kind: str = "str"
    required: bool = False
    default: Any = None
    positional: bool = False
    choices: tuple[str, ...] = ()
    #: A short CLI flag (``-p``).
    short: str | None = None
    #: What it names in the lab, checked against it before a run: ``target``
    #: (nodes, roles, shapes), ``az``, ``host``, ``disk`` or ``vip``; "" nothing.
    refers: str = ""

    @property
    def key(self) -> str:
        """The word a scenario (and the CLI option) uses."""
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class FaultKind:
    """A fault kind: ``name`` (scenario and CLI word), a one-line ``summary``,
    its ``args``, and ``builder``, the name of the Nemesis method that makes
    the fault from those arguments (as keywords)."""

    name: str
    summary: str
    args: tuple[Arg, ...]
    builder: str
    #: The class of the fault it builds, ``module:Class`` under :mod:`cmlab.faults`
    #: (its ``requires`` says what the host must have).
    fault: str = ""
    #: Whether its random choices (targets one/minority/majority, shapes) take ``--seed``.
    seeded: bool = True

    def requires(self) -> frozenset[str]:
        """What the host must have (:attr:`cmlab.faults.base.Fault.requires`); imports the fault's module."""
        import importlib

        module, _, cls = self.fault.partition(":")
        return getattr(importlib.import_module(f"cmlab.faults.{module}"), cls).requires

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name.replace("-", "_")), None)

    def check(self, given: dict[str, Any]) -> dict[str, Any]:
        """A scenario step's arguments (dashed keys) as the builder's keywords.

        :raises ValueError: an unknown or missing argument, a wrong type or choice.
        """
        out: dict[str, Any] = {}
        for key, value in given.items():
            arg = self.arg(key)
            if arg is None:
                raise ValueError(f"fault '{self.name}' takes {self.signature()} (? optional); '{key}' is not one of them")
            out[arg.name] = _typed(self, arg, value)
        missing = [a.key for a in self.args if a.required and a.name not in out]
        if missing:
            raise ValueError(f"fault '{self.name}' takes {self.signature()} (? optional); {', '.join(missing)} missing")
        return out

    def signature(self) -> str:
        """``target, process, signal?, every?``: its arguments, ``?`` when optional."""
        return ", ".join(a.key + ("" if a.required else "?") for a in self.args) or "no arguments"


def _typed(kind: FaultKind, arg: Arg, value: Any) -> Any:
    where = f"fault '{kind.name}', {arg.key}"
    if arg.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: a number, not {value!r}")
        return float(value)
    if arg.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: true or false, not {value!r}")
        return value
    if arg.kind == "list":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}: a name or a list of names, not {value!r}")
        return values
    if not isinstance(value, str):
        raise ValueError(f"{where}: a string, not {value!r}")
    if arg.choices and value not in arg.choices:
        raise ValueError(f"{where}: one of {', '.join(arg.choices)}, not {value!r}")
    return value


def _target(help_: str = TARGET) -> Arg:
    return Arg("target", help_, required=True, positional=True, refers="target")


_PROCESS = Arg("process", "a duty (database, agent, quorum, vip) or a process name", required=True, short="-p")
_VIP = Arg("vip", "the VIP (default: the lab's only one, or the one of the primary's AZ)", refers="vip")
_DISK = Arg("disk", "a disk of the topology's disks", required=True, positional=True, refers="disk")
_NODE = Arg("node", "the node (a target that names one)", required=True, positional=True, refers="target")

KINDS: tuple[FaultKind, ...] = (
    FaultKind("crash", "docker kill the target's containers (the host dies at once); heal starts them", (_target(),), "crash", fault="process:Crash"),
    FaultKind("pause", "docker pause the target's containers (every process frozen); heal unpauses", (_target(),), "pause", fault="process:Pause"),
    FaultKind("stop", "docker stop the target's containers (SIGTERM, then SIGKILL); heal starts them", (_target(),), "stop", fault="process:Stop"),
    FaultKind("restart", "docker restart the target's containers (not recorded: nothing to heal)", (_target(),), "restart", fault="process:Restart"),
    FaultKind("kill", "signal a process on the target (default SIGKILL)", (
        _target(), _PROCESS,
        Arg("signal", "the signal's name", default="KILL", short="-s"),
        Arg("every", "every process of that name, not only the top one", kind="bool", default=False)), "kill", fault="process:Kill"),
    FaultKind("freeze", "SIGSTOP a process on the target; heal sends SIGCONT", (_target(), _PROCESS), "freeze", fault="process:Freeze"),
    FaultKind("isolate", "cut each target node from every other node", (
        _target(),
        Arg("clients", "cut cmlab's clients (the probes) too", kind="bool", default=False)), "isolate", fault="network:Partition"),
    FaultKind("isolate-host", "a lab across hosts: cut every node of a host from the other hosts' nodes", (
        Arg("host", "a host's name, or primary-host", required=True, positional=True, refers="host"),
        Arg("clients", "cut cmlab's clients (the probes) too", kind="bool", default=True)), "isolate_host", fault="network:Partition", seeded=False),
    FaultKind("cut", "cut the nodes of A from the nodes of B (e.g. quorum databases)", (
        Arg("a", TARGET, required=True, positional=True, refers="target"),
        Arg("b", TARGET, required=True, positional=True, refers="target"),
        Arg("one_way", "drop only packets from A to B", kind="bool", default=False)), "cut", fault="network:Partition"),
    FaultKind("shape", "a partition of Jepsen's shapes across all nodes", (
        Arg("name", "the shape", required=True, positional=True, choices=("halves", "bridge", "majorities-ring")),), "shape", fault="network:Partition"),
    FaultKind("split-azs", "cut AZs from the other AZs at the router (an AZ: a name or primary-az)", (
        Arg("a", "the AZs cut off", kind="list", required=True, positional=True, refers="az"),
        Arg("b", "the AZs they are cut from (default: every other AZ)", kind="list", refers="az"),
        Arg("one_way", "drop only traffic from A to B", kind="bool", default=False)), "split_azs", fault="network:AzPartition", seeded=False),
    FaultKind("gateway-loss", "cut the target from the router's own addresses (the gateway CM's two-node mode pings), "
              "the router still forwarding", (_target(),), "gateway_loss", fault="network:GatewayLoss"),
    FaultKind("loss", "drop a share of the target's packets", (
        _target(),
        Arg("percent", "share of packets dropped, 0 to 100", kind="float", required=True),
        Arg("direction", "which packets", default="egress", choices=DIRECTIONS),
        Arg("peers", "only packets to or from these targets", refers="target")), "loss", fault="network:Loss"),
    FaultKind("delay", "delay what the target sends (netem: unsupported where the kernel lacks it)", (
        _target(),
        Arg("ms", "delay, milliseconds", kind="float", required=True),
        Arg("jitter_ms", "jitter, milliseconds", kind="float", default=0.0)), "delay", fault="network:Delay"),
    FaultKind("bandwidth", "limit what the target sends, receives or both (tbf; ingress on the host side of its links)", (
        _target(),
        Arg("rate", "a tc rate, e.g. 1mbit", required=True),
        Arg("direction", "which packets", default="egress", choices=DIRECTIONS)), "bandwidth", fault="network:Bandwidth"),
    FaultKind("link-down", "set the target's links down (host side)", (_target(),), "link_down", fault="network:LinkDown"),
    FaultKind("disk-readonly", "make a disk read-only", (_DISK,), "disk_readonly", fault="disk:DiskReadOnly", seeded=False),
    FaultKind("disk-detach", "detach a disk (its loop device fails every I/O)", (_DISK,), "disk_detach", fault="disk:DiskDetach", seeded=False),
    FaultKind("disk-fill", "fill a filesystem disk to a percentage", (
        _DISK, Arg("percent", "how full, 0 to 100", kind="float", required=True)), "disk_fill", fault="disk:DiskFill", seeded=False),
    FaultKind("vip-remove", "take the VIP from whichever nodes hold it now", (_VIP,), "vip_remove", fault="vip:VipRemove", seeded=False),
    FaultKind("vip-duplicate", "add the VIP on a node too (a duplicate address)", (
        _NODE, _VIP), "vip_duplicate", fault="vip:VipDuplicate"),
    FaultKind("vip-garp", "send gratuitous ARP saying the VIP is at a node", (
        _NODE, _VIP), "vip_garp", fault="vip:VipGarp"),
)

BY_NAME: dict[str, FaultKind] = {k.name: k for k in KINDS}


def get(name: str) -> FaultKind:
    """The kind called ``name``.

    :raises ValueError: no such kind (the known ones in the message).
    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown fault '{name}' (faults: {', '.join(BY_NAME)})") from None


def markdown_table() -> str:
    """The docs' table of fault kinds (docs/scenarios.md holds it; a test keeps it equal)."""
    rows = ["| fault | arguments (`?` optional) | what it does | the host needs |", "|---|---|---|---|"]
    for k in KINDS:
        rows.append(f"| `{k.name}` | {k.signature()} | {k.summary} | {', '.join(sorted(k.requires())) or 'nothing'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
