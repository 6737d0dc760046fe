"""The resolved lab: every name, address and parameter decided.

A :class:`LabPlan` is what the runtime and the engines work from. It is plain
data, serialised as JSON into the label ``cmlab.plan`` of every container, so
that ``status``, ``down`` and the faults can read a lab back from Docker alone,
even when the topology file is gone.
"""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pydantic import BaseModel, ConfigDict

from cmlab.errors import UnknownName
from cmlab.topology.schema import Role

#: Prefix of every Docker object name cmlab creates.
PREFIX = "cmlab"


class _Plan(BaseModel):
    model_config = ConfigDict(frozen=True)


class AzPlan(_Plan):
    name: str
    subnet: IPv4Network
    gateway: IPv4Address
    #: The router container's address in this AZ; None when the lab has one AZ.
    router_address: IPv4Address | None
    priority: int
    network: str
    #: Overlay labs: the host the AZ's VIP and access container live on (its first node's).
    host: str | None = None
    #: Overlay labs: the address of the AZ's access container, through which
    #: cmlab reaches the AZ (its published ports); None: cmlab is the gateway.
    access_address: IPv4Address | None = None

    @property
    def clients_from(self) -> IPv4Address:
        """The address cmlab's own clients (probes, readings) come from in this
        AZ: the access container on an overlay, else the gateway (the host)."""
        return self.access_address or self.gateway

    @property
    def access_container(self) -> str:
        return f"{self.network}-access"


class HostPlan(_Plan):
    """A Docker host of a lab across hosts."""

    name: str
    #: unix://, tcp://, ssh:// URL or a ``docker context`` name.
    endpoint: str
    #: The host's address (Swarm advertise address; published ports are reached there).
    address: str
    tls_dir: str | None = None


class NodePlan(_Plan):
    name: str
    az: str
    roles: tuple[Role, ...]
    address: IPv4Address
    container: str
    #: The host (of :attr:`LabPlan.hosts`) the container runs on; None: the local engine.
    host: str | None = None

    def has(self, role: Role) -> bool:
        return role in self.roles


class VipPlan(_Plan):
    name: str
    az: str
    address: IPv4Address
    prefixlen: int


class DiskPlan(_Plan):
    name: str
    size_mb: int
    kind: str
    nodes: tuple[str, ...]
    #: Where the nodes see it: a device node (block) or a mount point (filesystem).
    path: str


class LabPlan(_Plan):
    name: str
    engine: str
    #: Engine parameters with the engine's defaults filled in.
    parameters: dict[str, Any]
    network_driver: str
    azs: tuple[AzPlan, ...]
    nodes: tuple[NodePlan, ...]
    vips: tuple[VipPlan, ...]
    #: The router container's name when the lab has more than one AZ.
    router: str | None
    disks: tuple[DiskPlan, ...] = ()
    #: Docker hosts of a lab across hosts; empty: the one local engine.
    hosts: tuple[HostPlan, ...] = ()
    #: The host of the router (and of the lab's access point); None: the local engine.
    router_host: str | None = None
    #: MTU of overlay AZ networks, bytes (None: bridge networks, Docker's default).
    mtu: int | None = None

    @property
    def across_hosts(self) -> bool:
        """Whether the lab's AZ networks are Swarm overlays (its containers on ``hosts``)."""
        return self.network_driver == "overlay"

    def host(self, name: str) -> HostPlan:
        for h in self.hosts:
            if h.name == name:
                return h
        raise UnknownName(f"no host '{name}' in lab '{self.name}' (hosts: {', '.join(h.name for h in self.hosts) or 'none'})")

    def node(self, name: str) -> NodePlan:
        """The node called ``name``.

        :raises UnknownName: (a ``KeyError``) naming the known nodes."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise UnknownName(f"no node '{name}' in lab '{self.name}' (nodes: {', '.join(n.name for n in self.nodes)})")

    def az(self, name: str) -> AzPlan:
        for a in self.azs:
            if a.name == name:
                return a
        raise UnknownName(f"no AZ '{name}' in lab '{self.name}' (AZs: {', '.join(a.name for a in self.azs)})")

    def nodes_with(self, role: Role) -> list[NodePlan]:
        return [n for n in self.nodes if n.has(role)]

    def disk(self, name: str) -> DiskPlan:
        for d in self.disks:
            if d.name == name:
                return d
        raise UnknownName(f"no disk '{name}' in lab '{self.name}' (disks: {', '.join(d.name for d in self.disks) or 'none'})")

    def disks_of(self, node: str) -> list[DiskPlan]:
        return [d for d in self.disks if node in d.nodes]

    def vip_of_az(self, az: str) -> VipPlan | None:
        return next((v for v in self.vips if v.az == az), None)

    def routes_for(self, node: NodePlan) -> list[tuple[IPv4Network, IPv4Address]]:
        """Routes ``(destination subnet, via)`` that send a node's traffic for
        other AZs through the router, where inter-AZ faults apply."""
        own = self.az(node.az)
        if own.router_address is None:
            return []
        return [(a.subnet, own.router_address) for a in self.azs if a.name != node.az]

    def to_json(self) -> str:
        return self.model_dump_json()

    def to_topology(self) -> dict[str, Any]:
        """A topology document that resolves to this very plan (every subnet
        and address written out, the parameters with their defaults): what a
        run bundle carries so that a replay brings up the same lab."""
        network: dict[str, Any] = {"driver": self.network_driver, **({"mtu": self.mtu} if self.mtu else {})}
        hosts = [{"name": h.name, "endpoint": h.endpoint, "address": h.address,
                  **({"tls_dir": h.tls_dir} if h.tls_dir else {})} for h in self.hosts]
        return {
            "name": self.name, "engine": self.engine, "network": network, **({"hosts": hosts} if hosts else {}),
            "azs": [{"name": a.name, "subnet": str(a.subnet), "priority": a.priority} for a in self.azs],
            "nodes": [{"name": n.name, "az": n.az, "roles": [r.value for r in n.roles], "address": str(n.address),
                       **({"host": n.host} if n.host else {})} for n in self.nodes],
            "vips": [{"name": v.name, "az": v.az, "address": str(v.address)} for v in self.vips],
            "disks": [{"name": d.name, "size_mb": d.size_mb, "kind": d.kind, "nodes": list(d.nodes), "path": d.path}
                      for d in self.disks],
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_json(cls, text: str) -> "LabPlan":
        return cls.model_validate_json(text)

    @property
    def digest(self) -> str:
        """A short hash of the plan: two `up`s of the same plan are the same lab."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def container_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def network_name(lab: str, az: str) -> str:
    return f"{PREFIX}-{lab}-{az}"


def router_name(lab: str) -> str:
    return f"{PREFIX}-{lab}-router"
