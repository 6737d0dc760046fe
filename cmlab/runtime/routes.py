"""The host's own IPv4 networks, which a lab's subnets must not overlap.

A lab's AZ subnet that overlaps the host's LAN (the default gateway's
network, a VPN's routes) would make Docker route the host's own traffic into
the lab: the host loses its way out, and a partition cuts more than the lab.
Docker checks its own networks only, so cmlab reads the kernel's routing
table (``/proc/net/route``: no tool, no privilege) and refuses the overlap.

Routes through Docker's own bridges (``docker0``, ``br-<id>``,
``docker_gwbridge``) and veth pairs are left out: Docker's networks are
checked from Docker itself (:meth:`cmlab.runtime.docker.DockerRuntime.used_subnets`),
and a lab's own bridges must not conflict with the lab.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

ROUTE_TABLE = Path("/proc/net/route")
#: Interfaces whose routes are Docker's networks, not the host's.
DOCKER_INTERFACES = ("docker0", "docker_gwbridge", "br-", "veth")


def _address(hex_le: str) -> IPv4Address:
    """An address as /proc/net/route writes it: 8 hex digits, in the host's byte order (little-endian on x86)."""
    return IPv4Address(socket.inet_ntoa(struct.pack("=I", int(hex_le, 16))))


def parse_route_table(text: str) -> list[tuple[IPv4Network, str]]:
    """``(network, interface)`` of each route in ``/proc/net/route`` text, but
    the default route (it overlaps everything) and Docker's interfaces."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest, mask = fields[0], fields[1], fields[7]
        if iface.startswith(DOCKER_INTERFACES):
            continue
        try:
            network = IPv4Network(f"{_address(dest)}/{_address(mask)}", strict=False)
        except ValueError:
            continue
        if network.prefixlen:
            out.append((network, f"a route on {iface}"))
    return out


def host_routes() -> list[tuple[IPv4Network, str]]:
    """The host's own IPv4 routes: ``(network, interface)``, see the module doc.
    Empty where the table cannot be read (not Linux)."""
    try:
        return parse_route_table(ROUTE_TABLE.read_text())
    except OSError:
        return []
