"""VIP churn: take the VIP from its holder, put it on a wrong node (a
duplicate address), send gratuitous ARP for the wrong node.

Addresses are changed from the host with pyroute2 inside the node's
namespace; the ARP is sent from a raw socket opened inside it (``nsenter``).
Flapping on a schedule is :meth:`cmlab.faults.nemesis.Nemesis.flap_vip`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import ClassVar


from cmlab.errors import FaultError
from cmlab.faults.base import Fault, FaultContext
from cmlab.runtime.netns import ContainerNetns, netlink_error
from cmlab.topology.plan import VipPlan


def vip_of(ctx: FaultContext, name: str) -> VipPlan:
    for v in ctx.plan.vips:
        if v.name == name:
            return v
    raise FaultError(f"no VIP '{name}' in lab '{ctx.plan.name}' (VIPs: {', '.join(v.name for v in ctx.plan.vips) or 'none'})")


def _ipv4_addresses(ns: ContainerNetns) -> list[tuple[int, str, str]]:
    """``(interface index, interface name, address)`` of every IPv4 address in
    the namespace: by netlink on this machine, by ``ip -j`` through the helper
    of a remote host."""
    if ns.remote:
        out = []
        for link in json.loads(ns.run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
            for info in link.get("addr_info", []):
                out.append((link["ifindex"], link["ifname"], info["local"]))
        return out
    with ns.rtnl() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        return [(a["index"], names.get(a["index"], ""), a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=2)]


def vip_interface(ctx: FaultContext, ns: ContainerNetns, node: str) -> tuple[int, str]:
    """(index, name) of the node's interface on its AZ network."""
    own = IPv4Address(ctx.address(node))
    for index, name, address in _ipv4_addresses(ns):
        if IPv4Address(address) == own:
            return index, name
    raise FaultError(f"{node}: no interface holds {own}")


def holds(ctx: FaultContext, node: str, vip: VipPlan) -> bool:
    return any(address == str(vip.address) for _, _, address in _ipv4_addresses(ctx.netns(node)))


def set_address(ctx: FaultContext, node: str, vip: VipPlan, present: bool) -> None:
    """Add or remove the VIP on a node; harmless when already so."""
    if ctx.plan.node(node).az != vip.az:
        raise FaultError(f"{node} is not in AZ {vip.az}: VIP {vip.name} cannot live there")
    ns = ctx.netns(node)
    index, ifname = vip_interface(ctx, ns, node)
    if ns.remote:
        proc = ns.run(["ip", "addr", "add" if present else "del", f"{vip.address}/{vip.prefixlen}", "dev", ifname],
                      check=False)
        # Already there on add (EEXIST), already gone on del (EADDRNOTAVAIL): as wanted.
        if proc.returncode != 0 and "File exists" not in proc.stderr and "Cannot assign" not in proc.stderr:
            raise FaultError(f"{node}: cannot {'add' if present else 'remove'} {vip.address}: {proc.stderr.strip()}")
        return
    with ns.rtnl() as ipr:
        try:
            ipr.addr("add" if present else "del", index=index, address=str(vip.address), prefixlen=vip.prefixlen)
        except netlink_error() as exc:
            if exc.code not in (17, 99):  # EEXIST on add, EADDRNOTAVAIL on del
                raise FaultError(f"{node}: cannot {'add' if present else 'remove'} {vip.address}: {exc}") from None


@dataclass(frozen=True)
class VipRemove(Fault):
    """Take the VIP's address off the nodes that hold it now (the manager
    may put it back on its next check)."""

    kind: ClassVar[str] = "vip-remove"
    reversible: ClassVar[bool] = False
    vip: str
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return f"VIP {self.vip} removed from {','.join(self.nodes)}"

    def apply(self, ctx: FaultContext) -> None:
        vip = vip_of(ctx, self.vip)
        for node in self.nodes:
            set_address(ctx, node, vip, present=False)


@dataclass(frozen=True)
class VipDuplicate(Fault):
    """Add the VIP on a node that should not hold it (a duplicate address
    while the rightful holder keeps it); undo removes it there."""

    kind: ClassVar[str] = "vip-duplicate"
    vip: str
    node: str

    def describe(self) -> str:
        return f"VIP {self.vip} also added on {self.node}"

    def apply(self, ctx: FaultContext) -> None:
        set_address(ctx, self.node, vip_of(ctx, self.vip), present=True)

    def undo(self, ctx: FaultContext) -> None:
        try:
            set_address(ctx, self.node, vip_of(ctx, self.vip), present=False)
        except FaultError:
            pass

    def observe(self, ctx: FaultContext) -> bool | None:
        try:
            return holds(ctx, self.node, vip_of(ctx, self.vip))
        except FaultError:
            return False


#: Sends gratuitous ARP (a request and a reply, as vip-manager does) for an
#: address the interface need not hold. arping cannot: it binds to the address.
_GARP = """
import socket, struct, sys, time
ifname, ip, count = sys.argv[1], socket.inet_aton(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
mac = s.getsockname()[4]  # this namespace's interface (sysfs would show the host's)
for _ in range(count):
    for op, target in ((1, b"\\x00" * 6), (2, b"\\xff" * 6)):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, target, ip)
        s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class VipGarp(Fault):
    """Send gratuitous ARP announcing the VIP at ``node``'s MAC address, so
    that neighbours send the VIP's traffic there (the node need not hold it)."""

    kind: ClassVar[str] = "vip-garp"
    reversible: ClassVar[bool] = False
    requires: ClassVar[frozenset[str]] = frozenset({"root", "nsenter"})
    vip: str
    node: str
    count: int = 3

    def describe(self) -> str:
        return f"gratuitous ARP: VIP {self.vip} is at {self.node}"

    def apply(self, ctx: FaultContext) -> None:
        vip = vip_of(ctx, self.vip)
        if ctx.plan.node(self.node).az != vip.az:
            raise FaultError(f"{self.node} is not in AZ {vip.az}, the L2 network of VIP {vip.name}")
        ns = ctx.netns(self.node)
        _, ifname = vip_interface(ctx, ns, self.node)
        # This machine's Python, or the helper image's on a remote host.
        python = "python3" if ns.remote else sys.executable
        ns.run([python, "-c", _GARP, ifname, str(vip.address), str(self.count)])
