"""Network faults: partitions, packet loss, bandwidth, delay, link down.

Each lab container has its own network namespace, and each fault owns its
own chains in the table ``inet cmlab`` there (chain names start with the
fault's key). Undoing a fault deletes only its chains; healing deletes only
that table. Nothing else (Docker's rules, the host's) is ever touched.
Partitions between AZs apply in the router's namespace, on forwarding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar


from cmlab.errors import FaultError, Unsupported
from cmlab.faults.base import Fault, FaultContext
from cmlab.runtime.netns import ContainerNetns, host_rtnl, netlink_error

TABLE = "inet cmlab"
#: tc handle of cmlab's root qdiscs (major 0xc1ab), so heal finds its own only.
QDISC_HANDLE = 0xC1AB0000
#: The same handle as the tc command writes it.
TC_HANDLE = "c1ab:"
NFT = frozenset({"root", "nsenter", "nft"})


def add_chain(ns: ContainerNetns, chain: str, hook: str, rules: list[str]) -> None:
    """Create (or replace) a base chain of the lab's table, atomically."""
    script = [f"add table {TABLE}",
              f"add chain {TABLE} {chain} {{ type filter hook {hook} priority -10 ; policy accept ; }}",
              f"flush chain {TABLE} {chain}"]
    script += [f"add rule {TABLE} {chain} {rule}" for rule in rules]
    ns.nft("\n".join(script) + "\n")


def chains(ns: ContainerNetns) -> list[str]:
    """Names of the chains in the lab's table of this namespace."""
    proc = ns.run(["nft", "list", "table", *TABLE.split()], check=False)
    return re.findall(r"^\s*chain (\S+) \{", proc.stdout, flags=re.M) if proc.returncode == 0 else []


def delete_chains(ns: ContainerNetns, specs: list[tuple[str, str]]) -> None:
    """Delete base chains ``(name, hook)`` of the lab's table in one atomic
    script; harmless when they are absent (each is declared, then deleted)."""
    script = [f"add table {TABLE}"]
    for chain, hook in specs:
        script += [f"add chain {TABLE} {chain} {{ type filter hook {hook} priority -10 ; policy accept ; }}",
                   f"delete chain {TABLE} {chain}"]
    ns.nft("\n".join(script) + "\n")


def delete_table(ns: ContainerNetns) -> None:
    """Remove the lab's table (and only it); harmless when absent."""
    ns.nft(f"add table {TABLE}\ndelete table {TABLE}\n")


def host_peers(ns: ContainerNetns) -> list[int]:
    """Indexes of the host-side ends of the namespace's veth links, in this
    machine's root namespace.

    :raises Unsupported: the container is on another host (its links' other
        ends are there, and on an overlay inside the network's own namespace).
    """
    if ns.remote:
        raise Unsupported(f"{ns.name} is on another host: faults on the host side of its links (ingress shaping, "
                          "link down) are not supported across hosts yet")
    return [peer for _, _, peer in ns.interfaces() if peer]


def _each_node(by_node: dict[str, list[tuple[str, str, list[str]]]], fn: Callable[[str, list[tuple[str, str, list[str]]]], None]) -> None:
    """Run ``fn(node, specs)`` for every node in parallel; re-raise the first error."""
    with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
        for future in [pool.submit(fn, node, specs) for node, specs in by_node.items()]:
            future.result()


def _set(addresses: list[str]) -> str:
    return "{ " + ", ".join(addresses) + " }"


class _ChainFault(Fault):
    """A fault made of nftables chains in some namespaces."""

    requires: ClassVar[frozenset[str]] = NFT

    def chains_by_node(self, ctx: FaultContext) -> dict[str, list[tuple[str, str, list[str]]]]:
        """node -> [(chain suffix, hook, rules)]."""
        raise NotImplementedError

    def apply(self, ctx: FaultContext) -> None:
        def one(node: str, specs: list[tuple[str, str, list[str]]]) -> None:
            ns = ctx.netns(node)
            for suffix, hook, rules in specs:
                add_chain(ns, f"{self.key}_{suffix}", hook, rules)

        _each_node(self.chains_by_node(ctx), one)

    def undo(self, ctx: FaultContext) -> None:
        def one(node: str, specs: list[tuple[str, str, list[str]]]) -> None:
            try:
                delete_chains(ctx.netns(node), [(f"{self.key}_{suffix}", hook) for suffix, hook, _ in specs])
            except FaultError:
                pass  # the container is gone or stopped: so is its namespace

        # Unhooking a base chain waits for an RCU grace period (~15 ms): do the nodes at once.
        _each_node(self.chains_by_node(ctx), one)

    def observe(self, ctx: FaultContext) -> bool | None:
        try:
            return all(any(c.startswith(self.key) for c in chains(ctx.netns(n))) for n in self.chains_by_node(ctx))
        except FaultError:
            return False


@dataclass(frozen=True)
class Partition(_ChainFault):
    """Each node drops, on input, the packets from the nodes of its grudge.

    :param grudge: ``((node, (nodes it drops...)), ...)``, from :mod:`cmlab.faults.grudge`.
    :param clients: nodes that also drop the clients (cmlab's probes: the
        host, seen as the AZ gateway, or the AZ's access container across
        hosts); the nodes cut off, not every node of the grudge, which would
        blind the probes to the rest of the cluster.
    """

    kind: ClassVar[str] = "partition"
    grudge: tuple[tuple[str, tuple[str, ...]], ...]
    clients: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{n} drops {','.join(d)}" for n, d in self.grudge]
        return "partition: " + "; ".join(parts) + (f" (and clients at {','.join(self.clients)})" if self.clients else "")

    def chains_by_node(self, ctx: FaultContext) -> dict[str, list[tuple[str, str, list[str]]]]:
        out = {}
        for node, drops in self.grudge:
            addresses = [ctx.address(d) for d in drops]
            if node in self.clients:
                addresses.append(str(ctx.plan.az(ctx.plan.node(node).az).clients_from))
            out[node] = [("in", "input", [f"ip saddr {_set(addresses)} drop"])]
        return out


@dataclass(frozen=True)
class AzPartition(_ChainFault):
    """The router stops forwarding from the AZs ``a`` to the AZs ``b`` (and back
    unless ``one_way``)."""

    kind: ClassVar[str] = "az-partition"
    a: tuple[str, ...]
    b: tuple[str, ...]
    one_way: bool = False

    def describe(self) -> str:
        arrow = "->" if self.one_way else "<->"
        return f"AZ partition: {','.join(self.a)} {arrow} {','.join(self.b)} cut at the router"

    def chains_by_node(self, ctx: FaultContext) -> dict[str, list[tuple[str, str, list[str]]]]:
        if ctx.plan.router is None:
            raise FaultError("the lab has one AZ: there is no router to partition AZs at")
        sa = _set([str(ctx.plan.az(a).subnet) for a in self.a])
        sb = _set([str(ctx.plan.az(b).subnet) for b in self.b])
        rules = [f"ip saddr {sa} ip daddr {sb} drop"]
        if not self.one_way:
            rules.append(f"ip saddr {sb} ip daddr {sa} drop")
        return {ctx.plan.router: [("fwd", "forward", rules)]}


@dataclass(frozen=True)
class GatewayLoss(_ChainFault):
    """The nodes drop every packet to or from the router's own addresses, while
    the router still forwards between AZs: the peers still see each other, the
    gateway they ping is gone (CM's two-node mode arbitrates through
    ``third_party_gateway_ip``, the router here: reference opengauss-cm.md)."""

    kind: ClassVar[str] = "gateway-loss"
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return f"gateway loss: {','.join(self.nodes)} cut from the router's own addresses"

    def chains_by_node(self, ctx: FaultContext) -> dict[str, list[tuple[str, str, list[str]]]]:
        routers = [str(a.router_address) for a in ctx.plan.azs if a.router_address is not None]
        if not routers:
            raise FaultError("the lab has one AZ: no router, and its only gateway is the host, which the probes use")
        return {n: [("in", "input", [f"ip saddr {_set(routers)} drop"]),
                    ("out", "output", [f"ip daddr {_set(routers)} drop"])] for n in self.nodes}


@dataclass(frozen=True)
class Loss(_ChainFault):
    """Drop a share of the packets the nodes send (egress), receive (ingress)
    or both, to ``peers`` only when given (nftables ``numgen random``).

    :param percent: 0 to 100, resolution 0.01 %.
    """

    kind: ClassVar[str] = "loss"
    nodes: tuple[str, ...]
    percent: float
    direction: str = "egress"
    peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise FaultError(f"loss percent must be in (0, 100], not {self.percent}")
        if self.direction not in ("egress", "ingress", "both"):
            raise FaultError(f"loss direction must be egress, ingress or both, not '{self.direction}'")

    def describe(self) -> str:
        to = f" with {','.join(self.peers)}" if self.peers else ""
        return f"loss {self.percent:g}% {self.direction} on {','.join(self.nodes)}{to}"

    def chains_by_node(self, ctx: FaultContext) -> dict[str, list[tuple[str, str, list[str]]]]:
        threshold = round(self.percent * 100)
        peers = _set([ctx.address(p) for p in self.peers]) if self.peers else ""
        specs = []
        if self.direction in ("egress", "both"):
            specs.append(("out", "output", [f"{'ip daddr ' + peers + ' ' if peers else ''}numgen random mod 10000 < {threshold} drop"]))
        if self.direction in ("ingress", "both"):
            specs.append(("in", "input", [f"{'ip saddr ' + peers + ' ' if peers else ''}numgen random mod 10000 < {threshold} drop"]))
        return {n: specs for n in self.nodes}


class _QdiscFault(Fault):
    """A root qdisc with cmlab's handle on every interface of some nodes:
    inside their namespaces for what they send (egress), and on the host side
    of their veth links for what they receive (ingress: the host's egress
    into the container, so no ifb device is needed)."""

    nodes: tuple[str, ...]

    def qdisc(self) -> tuple[str, dict]:
        raise NotImplementedError

    def tc_argv(self) -> list[str]:
        """The qdisc's parameters as the ``tc`` command takes them (faults on a remote host)."""
        raise NotImplementedError

    @property
    def _directions(self) -> tuple[str, ...]:
        d = getattr(self, "direction", "egress")
        return ("egress", "ingress") if d == "both" else (d,)

    def apply(self, ctx: FaultContext) -> None:
        kind, args = self.qdisc()
        for node in self.nodes:
            ns = ctx.netns(node)
            if "egress" in self._directions and ns.remote:
                for _, ifname, _ in ns.interfaces():
                    proc = ns.run(["tc", "qdisc", "replace", "dev", ifname, "root", "handle", TC_HANDLE, kind,
                                   *self.tc_argv()], check=False)
                    if proc.returncode != 0:
                        if "Specified qdisc kind is unknown" in proc.stderr or "No such file" in proc.stderr:
                            raise Unsupported(f"{node}'s host kernel has no '{kind}' qdisc: {self.kind} is unavailable there")
                        raise FaultError(f"{node}: tc {kind} failed: {proc.stderr.strip()}")
            elif "egress" in self._directions:
                with ns.rtnl() as ipr:
                    for index, _, _ in ns.interfaces():
                        self._replace(ipr, node, kind, index, args)
            if "ingress" in self._directions:
                with host_rtnl() as ipr:
                    for peer in host_peers(ns):
                        self._replace(ipr, node, kind, peer, args)

    def _replace(self, ipr: Any, node: str, kind: str, index: int, args: dict) -> None:
        try:
            ipr.tc("replace", kind, index, handle=QDISC_HANDLE, **args)
        except netlink_error() as exc:
            if exc.code == 2:  # ENOENT: the kernel has no such qdisc
                raise Unsupported(f"this host's kernel has no '{kind}' qdisc (sch_{kind}): {self.kind} is unavailable here") from None
            raise FaultError(f"{node}: tc {kind} failed: {exc}") from None

    def undo(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            try:
                ns = ctx.netns(node)
                remove_qdiscs(ns)
                remove_host_qdiscs(host_peers(ns))
            except FaultError:
                continue

    def observe(self, ctx: FaultContext) -> bool | None:
        kind, _ = self.qdisc()
        try:
            for n in self.nodes:
                ns = ctx.netns(n)
                if "egress" in self._directions and not qdisc_kinds(ns).get(kind, False):
                    return False
                if "ingress" in self._directions:
                    peers = host_peers(ns)
                    with host_rtnl() as ipr:
                        ours = {q["index"] for q in ipr.get_qdiscs() if q["handle"] == QDISC_HANDLE and q.get_attr("TCA_KIND") == kind}
                    if not peers or not set(peers) <= ours:
                        return False
            return True
        except FaultError:
            return False


def _remote_qdiscs(ns: ContainerNetns) -> list[dict]:
    """cmlab's root qdiscs in a remote namespace (``tc -j``): ``{"dev", "kind"}`` each."""
    shown = json.loads(ns.run(["tc", "-j", "qdisc", "show"]).stdout or "[]")
    return [q for q in shown if q.get("handle") == TC_HANDLE and q.get("root")]


def qdisc_kinds(ns: ContainerNetns) -> dict[str, bool]:
    """Kinds of cmlab's root qdiscs in a namespace."""
    if ns.remote:
        return {q["kind"]: True for q in _remote_qdiscs(ns)}
    with ns.rtnl() as ipr:
        return {q.get_attr("TCA_KIND"): True for q in ipr.get_qdiscs() if q["handle"] == QDISC_HANDLE}


def remove_host_qdiscs(indexes: list[int]) -> None:
    """Delete cmlab's root qdiscs on these host-side links (and no other qdisc)."""
    if not indexes:
        return
    with host_rtnl() as ipr:
        for q in ipr.get_qdiscs():
            if q["handle"] == QDISC_HANDLE and q["index"] in indexes:
                try:
                    ipr.tc("del", index=q["index"], handle=QDISC_HANDLE, parent=0xFFFFFFFF)
                except netlink_error() as exc:
                    if exc.code != 2:
                        raise FaultError(f"cannot delete qdisc on host link {q['index']}: {exc}") from None


def remove_qdiscs(ns: ContainerNetns) -> None:
    """Delete cmlab's root qdiscs (and no other) in a namespace."""
    if ns.remote:
        for q in _remote_qdiscs(ns):
            ns.run(["tc", "qdisc", "del", "dev", q["dev"], "root", "handle", TC_HANDLE], check=False)
        return
    with ns.rtnl() as ipr:
        for q in ipr.get_qdiscs():
            if q["handle"] == QDISC_HANDLE:
                try:
                    ipr.tc("del", index=q["index"], handle=QDISC_HANDLE, parent=0xFFFFFFFF)
                except netlink_error() as exc:
                    if exc.code != 2:
                        raise FaultError(f"{ns.name}: cannot remove qdisc: {exc}") from None


@dataclass(frozen=True)
class Bandwidth(_QdiscFault):
    """Limit what the nodes send (egress), receive (ingress) or both to
    ``rate`` (tbf; ingress on the host side of their links).

    :param rate: tc units, e.g. ``"1mbit"``, ``"500kbit"``.
    :param burst_bytes: bucket size, bytes.
    :param latency_ms: longest a packet may queue, milliseconds.
    :param direction: ``egress``, ``ingress`` or ``both``.
    """

    kind: ClassVar[str] = "bandwidth"
    requires: ClassVar[frozenset[str]] = frozenset({"root", "tbf"})
    nodes: tuple[str, ...]
    rate: str
    burst_bytes: int = 32768
    latency_ms: int = 100
    direction: str = "egress"

    def __post_init__(self) -> None:
        if self.direction not in ("egress", "ingress", "both"):
            raise FaultError(f"bandwidth direction '{self.direction}': use egress, ingress or both")

    def describe(self) -> str:
        return f"bandwidth {self.rate} {self.direction} on {','.join(self.nodes)}"

    def qdisc(self) -> tuple[str, dict]:
        return "tbf", {"rate": self.rate, "burst": self.burst_bytes, "latency": f"{self.latency_ms}ms"}

    def tc_argv(self) -> list[str]:
        return ["rate", self.rate, "burst", str(self.burst_bytes), "latency", f"{self.latency_ms}ms"]


@dataclass(frozen=True)
class Delay(_QdiscFault):
    """Delay what the nodes send by ``ms`` plus or minus ``jitter_ms`` (netem).
    Unsupported where the kernel has no netem qdisc."""

    kind: ClassVar[str] = "delay"
    requires: ClassVar[frozenset[str]] = frozenset({"root", "netem"})
    nodes: tuple[str, ...]
    ms: float
    jitter_ms: float = 0

    def describe(self) -> str:
        return f"delay {self.ms:g}±{self.jitter_ms:g} ms egress on {','.join(self.nodes)}"

    def qdisc(self) -> tuple[str, dict]:
        return "netem", {"delay": int(self.ms * 1000), "jitter": int(self.jitter_ms * 1000)}

    def tc_argv(self) -> list[str]:
        return ["delay", f"{int(self.ms * 1000)}us", f"{int(self.jitter_ms * 1000)}us"]


@dataclass(frozen=True)
class LinkDown(Fault):
    """Set the host side of the nodes' veth links down (the cable is pulled;
    the container keeps its addresses and routes)."""

    kind: ClassVar[str] = "link-down"
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return f"link down on {','.join(self.nodes)}"

    def _peers(self, ctx: FaultContext) -> list[int]:
        return [peer for n in self.nodes for peer in host_peers(ctx.netns(n))]

    def apply(self, ctx: FaultContext) -> None:
        set_links(self._peers(ctx), "down")

    def undo(self, ctx: FaultContext) -> None:
        try:
            set_links(self._peers(ctx), "up")
        except FaultError:
            pass

    def observe(self, ctx: FaultContext) -> bool | None:
        try:
            peers = self._peers(ctx)
        except FaultError:
            return False
        with host_rtnl() as ipr:
            return all(ipr.get_links(p)[0].get_attr("IFLA_OPERSTATE") == "DOWN" for p in peers)


def set_links(indexes: list[int], state: str) -> None:
    with host_rtnl() as ipr:
        for index in indexes:
            try:
                ipr.link("set", index=index, state=state)
            except netlink_error() as exc:
                raise FaultError(f"cannot set link {index} {state}: {exc}") from None
