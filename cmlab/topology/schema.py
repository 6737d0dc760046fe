"""The topology file, as the user writes it (pydantic v2 models).

Structural rules (types, names, required keys) live here; rules that relate
several parts of the file (unknown AZ, overlapping subnets, a VIP outside its
AZ) live in :mod:`cmlab.topology.resolve`, and engine rules (quorum size,
timing) live on each engine. ``cmlab schema`` prints the JSON Schema of
:class:`Topology` so that editors can complete the file.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

#: Lab, AZ, node and VIP names become container names, hostnames and
#: network names, so they are short DNS labels.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,19}$")]
NAME_HINT = "a name starts with a lowercase letter and has at most 20 of a-z, 0-9 and '-'"


def _written_as_text(value: Any) -> Any:
    """Addresses and subnets are written as text: pydantic would take the
    number 5 (or ``true``) for 0.0.0.5, which no one meant."""
    if not isinstance(value, (str, IPv4Address, IPv4Network)):
        raise ValueError(f"write it as text, like 10.213.10.11 or 10.213.10.0/24, not {value!r}")
    return value


Address = Annotated[IPv4Address, BeforeValidator(_written_as_text)]
Subnet = Annotated[IPv4Network, BeforeValidator(_written_as_text)]


class Role(StrEnum):
    """What a node runs. ``database``: a database instance (a DN for CM, a
    PostgreSQL + Patroni member for Patroni). ``quorum``: a member of the
    consensus group that arbitrates (a CMS for CM, an etcd member for Patroni).
    """

    database = "database"
    quorum = "quorum"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AzSpec(_Strict):
    """An availability zone: one L2 network."""

    name: Name
    subnet: Subnet | None = Field(
        default=None, description="IPv4 subnet of the AZ network; allocated from a free pool when omitted"
    )
    priority: int = Field(default=1, ge=1, description="AZ priority (CM's azPriority); lower is preferred")


class NodeSpec(_Strict):
    """A host of the lab: one container."""

    name: Name
    az: Name
    roles: list[Role] = Field(default_factory=lambda: [Role.database, Role.quorum], min_length=1)
    address: Address | None = Field(default=None, description="static address; allocated in the AZ subnet when omitted")
    host: Name | None = Field(
        default=None, description="the host (of `hosts:`) the node's container runs on; default: its AZ's host "
                                  "(AZs are spread over the hosts, one AZ a host where possible)")


class HostSpec(_Strict):
    """A Docker host of a lab across hosts (``network: {driver: overlay}``).

    The hosts must form one Docker Swarm (``cmlab up --init-swarm`` makes one
    of them), because AZ networks are Swarm's attachable overlay networks.
    """

    name: Name
    endpoint: str = Field(
        min_length=1,
        description="how to reach the host's Docker Engine: unix:///path/docker.sock, tcp://HOST:2376 "
                    "(TLS from tls_dir), ssh://USER@HOST, or the name of a `docker context`")
    address: str | None = Field(
        default=None,
        description="the host's address as the other hosts and cmlab see it (Swarm's advertise address, and where "
                    "cmlab reaches the lab's published ports); default: the endpoint's host name, required "
                    "for unix:// and context endpoints")
    tls_dir: str | None = Field(
        default=None, description="for tcp://: a folder with ca.pem, cert.pem and key.pem (Docker's layout)")


class VipSpec(_Strict):
    """A virtual IP that follows the primary while the primary is in this AZ."""

    name: Name | None = Field(default=None, description="defaults to vip-<az>")
    az: Name
    address: Address | None = Field(
        default=None, description="an address of the AZ subnet that no node uses; allocated when omitted"
    )


class DiskSpec(_Strict):
    """A loop-device disk made from a sparse file, shared by the nodes named
    (CM's voting and shared disks are such raw devices)."""

    name: Name
    size_mb: int = Field(default=256, ge=16, le=65536, description="size in MiB (sparse: costs nothing until written)")
    kind: Literal["block", "filesystem"] = Field(
        default="block", description="block: a raw device node; filesystem: ext4, mounted")
    nodes: list[Name] | None = Field(default=None, description="nodes that see the disk; all when omitted")
    path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9_./-]+$",
                             description="in-container path: /dev/cmlab-<name> (block) or /mnt/<name> (filesystem) by default")


class NetworkSpec(_Strict):
    """How AZ networks are made."""

    driver: Literal["bridge", "overlay"] = Field(
        default="bridge", description="bridge: one host; overlay: Docker Swarm across hosts"
    )
    mtu: int | None = Field(
        default=None, ge=576, le=9000,
        description="overlay only: the MTU of the AZ networks, in bytes; default: 1350 (VXLAN takes 50 bytes "
                    "of a host's 1400, a common cloud MTU)")


class Topology(_Strict):
    """A cmlab topology file."""

    name: Name = Field(description="the lab name; every resource carries the label cmlab.lab=<name>")
    engine: str = Field(default="postgres-patroni", description="the engine (cluster manager) the lab runs")
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    hosts: list[HostSpec] = Field(
        default_factory=list,
        description="Docker hosts of a lab across hosts (network driver overlay); none: the local Docker Engine")
    azs: list[AzSpec] = Field(min_length=1)
    nodes: list[NodeSpec] = Field(min_length=1)
    vips: list[VipSpec] = Field(default_factory=list)
    disks: list[DiskSpec] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="engine parameters; `cmlab schema --engine NAME` lists them"
    )
