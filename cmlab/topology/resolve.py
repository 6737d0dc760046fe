"""From a topology file to a :class:`~cmlab.topology.plan.LabPlan`.

Checks the rules that relate parts of the file, asks the engine for its own
rules, allocates what the user left out (subnets, addresses, VIPs) and
collects every problem into one :class:`~cmlab.errors.TopologyError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from cmlab.errors import Issue, TopologyError
from cmlab.topology.plan import AzPlan, DiskPlan, HostPlan, LabPlan, NodePlan, VipPlan, container_name, network_name, router_name
from cmlab.topology.schema import NAME_HINT, Role, Topology
from cmlab.topology.yaml_source import Positions, join_path, load_yaml, read_yaml_file

if TYPE_CHECKING:
    from cmlab.engines.base import Engine
    from cmlab.engines.registry import EngineRegistry

#: Where AZ subnets come from when the topology gives none: /24s of this /16,
#: away from Docker's default pools (172.17-31.x, 192.168.x).
POOL = IPv4Network("10.213.0.0/16")
#: Index (in the subnet's host list) of the first address handed to nodes.
FIRST_NODE_INDEX = 10
#: Index of the first address handed to VIPs that give none.
FIRST_VIP_INDEX = 99
#: AZ subnets from /16 (65536 addresses) to /28 (16): a lab is a few nodes,
#: and a wider one would shadow more of the host's address space.
WIDEST_PREFIX, NARROWEST_PREFIX = 16, 28

#: The host's own networks: ``(network, what: "route on eth0")`` (:func:`cmlab.runtime.routes.host_routes`).
HostRoutes = Iterable[tuple[IPv4Network, str]]


def pydantic_issues(exc: ValidationError, prefix: str = "", schema_command: str = "cmlab schema") -> list[Issue]:
    """One :class:`Issue` per pydantic error, with its document path and a fix."""
    issues = []
    for err in exc.errors():
        where = prefix
        for part in err["loc"]:
            where = join_path(where, part)
        # pydantic prefixes a validator's own message with its error type: the message alone reads better.
        msg = err["msg"].removeprefix("Value error, ")
        fix = ""
        if err["type"] == "string_pattern_mismatch":
            fix = NAME_HINT
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
            fix = f"remove it or check its spelling (`{schema_command}` lists the keys)"
        elif err["type"] == "missing":
            fix = "add it"
        issues.append(Issue(where or "<document>", msg, fix))
    return issues


def parse_topology(data: Any, source: str, positions: Positions) -> Topology:
    """Validate the structure of a parsed document.

    :raises TopologyError: with one issue per structural problem.
    """
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(source, pydantic_issues(exc), positions) from None


def _duplicates(names: Iterable[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


def _free_subnets(count: int, taken: list[IPv4Network]) -> list[IPv4Network]:
    out: list[IPv4Network] = []
    for candidate in POOL.subnets(new_prefix=24):
        if any(candidate.overlaps(t) for t in taken + out):
            continue
        out.append(candidate)
        if len(out) == count:
            return out
    raise TopologyError("<allocation>", [Issue("azs", f"no free /24 left in {POOL}", "give the AZs explicit subnets")])


def structural_issues(topo: Topology) -> list[Issue]:
    """Rules between parts of the file that hold for every engine."""
    issues: list[Issue] = []
    for kind, items in (("azs", topo.azs), ("nodes", topo.nodes)):
        dup = _duplicates(i.name for i in items)
        for i, item in enumerate(items):
            if item.name in dup:
                issues.append(Issue(f"{kind}[{i}].name", f"name '{item.name}' is used twice", "give each a unique name"))
    az_names = {a.name for a in topo.azs}
    for i, node in enumerate(topo.nodes):
        if node.az not in az_names:
            issues.append(Issue(f"nodes[{i}].az", f"unknown AZ '{node.az}'", f"use one of: {', '.join(sorted(az_names))}"))
        if len(set(node.roles)) != len(node.roles):
            issues.append(Issue(f"nodes[{i}].roles", "a role is listed twice", "list each role once"))
    for i, vip in enumerate(topo.vips):
        if vip.az not in az_names:
            issues.append(Issue(f"vips[{i}].az", f"unknown AZ '{vip.az}'", f"use one of: {', '.join(sorted(az_names))}"))
    vip_azs = [v.az for v in topo.vips]
    for i, vip in enumerate(topo.vips):
        if vip_azs.count(vip.az) > 1:
            issues.append(Issue(f"vips[{i}].az", f"AZ '{vip.az}' has more than one VIP", "give each AZ at most one VIP"))
    subnets = [(i, a.subnet) for i, a in enumerate(topo.azs) if a.subnet is not None]
    for i, s in subnets:
        if s.prefixlen > NARROWEST_PREFIX:
            issues.append(Issue(f"azs[{i}].subnet", f"{s} is too small", f"use a /{NARROWEST_PREFIX} or larger (a /24 is usual)"))
        elif s.prefixlen < WIDEST_PREFIX:
            issues.append(Issue(f"azs[{i}].subnet", f"{s} is too large", f"use a /{WIDEST_PREFIX} or smaller (a /24 is usual)"))
        for j, t in subnets:
            if j > i and s.overlaps(t):
                issues.append(Issue(f"azs[{j}].subnet", f"{t} overlaps {s} of azs[{i}]", "give each AZ its own subnet"))
    node_names = {n.name for n in topo.nodes}
    dup = _duplicates(d.name for d in topo.disks)
    paths = _duplicates(d.path for d in topo.disks if d.path)
    for i, disk in enumerate(topo.disks):
        if disk.name in dup:
            issues.append(Issue(f"disks[{i}].name", f"name '{disk.name}' is used twice", "give each disk a unique name"))
        if disk.path in paths:
            issues.append(Issue(f"disks[{i}].path", f"path '{disk.path}' is used twice", "give each disk its own path"))
        for j, node in enumerate(disk.nodes or []):
            if node not in node_names:
                issues.append(Issue(f"disks[{i}].nodes[{j}]", f"unknown node '{node}'", f"use one of: {', '.join(sorted(node_names))}"))
    issues += host_issues(topo)
    return issues


#: The MTU of overlay AZ networks when the topology gives none, bytes: VXLAN's
#: 50 bytes of headers taken from a host MTU of 1400 (common in clouds, and
#: this project's CI machines).
DEFAULT_OVERLAY_MTU = 1350
#: Endpoint schemes the Docker SDK speaks; anything else must be a context name.
ENDPOINT_SCHEMES = ("unix://", "tcp://", "ssh://")


def endpoint_host(endpoint: str) -> str | None:
    """The host name of a tcp:// or ssh:// endpoint (``ssh://root@h2:22`` -> ``h2``); None for others."""
    for scheme in ("tcp://", "ssh://"):
        if endpoint.startswith(scheme):
            rest = endpoint[len(scheme):].split("/", 1)[0].rsplit("@", 1)[-1]
            host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
            return host.strip("[]") or None
    return None


def host_issues(topo: Topology) -> list[Issue]:
    """Rules of a lab across hosts: hosts only with overlay networks, every
    placement names a known host, a loop-device disk stays on one host, and a
    VIP's AZ stays on one host (see :func:`placement`)."""
    issues: list[Issue] = []
    overlay = topo.network.driver == "overlay"
    if topo.hosts and not overlay:
        issues.append(Issue("hosts", "hosts are listed but the AZ networks are bridges, which live on one host",
                            "set `network: {driver: overlay}` (Docker Swarm across the hosts), or remove `hosts:`"))
    if overlay and not topo.hosts:
        issues.append(Issue("network.driver", "an overlay lab needs the Docker hosts it spans",
                            "list them under `hosts:` (name and endpoint each), or use driver: bridge on one host"))
    if topo.network.mtu is not None and not overlay:
        issues.append(Issue("network.mtu", "mtu applies to overlay networks only", "remove it, or use driver: overlay"))
    dup = _duplicates(h.name for h in topo.hosts)
    for i, host in enumerate(topo.hosts):
        where = f"hosts[{i}]"
        if host.name in dup:
            issues.append(Issue(f"{where}.name", f"name '{host.name}' is used twice", "give each host a unique name"))
        scheme = next((s for s in ENDPOINT_SCHEMES if host.endpoint.startswith(s)), None)
        if scheme is None and ("://" in host.endpoint or not host.endpoint.replace("-", "").replace("_", "").replace(".", "").isalnum()):
            issues.append(Issue(f"{where}.endpoint", f"'{host.endpoint}' is neither a Docker endpoint URL nor a context name",
                                "write unix:///var/run/docker.sock, tcp://HOST:2376, ssh://USER@HOST, or a `docker context ls` name"))
        if host.address is None and endpoint_host(host.endpoint) is None:
            issues.append(Issue(f"{where}.address", f"host '{host.name}' has no address (its endpoint names no host)",
                                "give the host's IP address as the other hosts reach it"))
        if host.tls_dir is not None and scheme != "tcp://":
            issues.append(Issue(f"{where}.tls_dir", "tls_dir applies to tcp:// endpoints only", "remove it, or use tcp://"))
    hosts = {h.name for h in topo.hosts}
    for i, node in enumerate(topo.nodes):
        if node.host is None:
            continue
        if not topo.hosts:
            issues.append(Issue(f"nodes[{i}].host", "a node is placed on a host but the topology lists no hosts",
                                "list the hosts under `hosts:` (with network driver overlay), or remove `host:`"))
        elif node.host not in hosts:
            issues.append(Issue(f"nodes[{i}].host", f"unknown host '{node.host}'", f"use one of: {', '.join(sorted(hosts))}"))
    if issues or not topo.hosts:
        return issues
    where = placement(topo)
    for i, disk in enumerate(topo.disks):
        issues.append(Issue(f"disks[{i}]", "disks on a lab across hosts are not supported yet (the loop device "
                            "would be made on the host cmlab runs on, not on the nodes' host)",
                            "remove the disk, or run this lab on one host (driver: bridge)"))
        on = sorted({where[n] for n in (disk.nodes or [x.name for x in topo.nodes]) if n in where})
        if len(on) > 1:
            issues.append(Issue(f"disks[{i}].nodes", f"disk '{disk.name}' is shared by nodes on hosts {', '.join(on)}, "
                                "but a loop device exists on one host only",
                                "place the disk's nodes on one host (`host:` on each), or list only nodes of one host"))
    for i, vip in enumerate(topo.vips):
        # Only a database node takes the VIP (it follows the primary).
        on = sorted({where[n.name] for n in topo.nodes if n.az == vip.az and Role.database in n.roles})
        if len(on) > 1:
            issues.append(Issue(f"vips[{i}].az", f"AZ '{vip.az}' spans hosts {', '.join(on)}, and a VIP's gratuitous ARP "
                                "does not cross hosts on an overlay network (Swarm answers ARP only for the addresses "
                                "it assigned), so nodes on the other hosts would not reach the VIP",
                                f"keep the database nodes of AZ '{vip.az}' on one host (drop `host:` from them, or name "
                                "one host), or drop its VIP"))
    return issues


def placement(topo: Topology) -> dict[str, str]:
    """Node name -> host name: a node's own ``host:``, else its AZ's host (the
    AZs dealt over the hosts in order, one AZ a host while hosts last)."""
    az_host = {a.name: topo.hosts[i % len(topo.hosts)].name for i, a in enumerate(topo.azs)}
    return {n.name: n.host or az_host.get(n.az, topo.hosts[0].name) for n in topo.nodes}


def _address_issues(topo: Topology, subnets: dict[str, IPv4Network]) -> list[Issue]:
    """Given node and VIP addresses: inside their AZ, not reserved, not shared."""
    issues: list[Issue] = []
    given = {a.name for a in topo.azs if a.subnet is not None}
    routed = len(subnets) > 1
    overlay = topo.network.driver == "overlay"
    used: dict[IPv4Address, str] = {}
    items = [(f"nodes[{i}]", "", n.az, n.address) for i, n in enumerate(topo.nodes)]
    items += [(f"vips[{i}]", "VIP ", v.az, v.address) for i, v in enumerate(topo.vips)]
    for owner, what, az, address in items:
        if address is None or az not in subnets:
            continue
        where, subnet = f"{owner}.address", subnets[az]
        if az not in given:
            issues.append(Issue(where, f"a {what}address needs its AZ's subnet to be given", f"give AZ '{az}' a subnet, or drop the address"))
        elif address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            issues.append(Issue(where, f"{what}{address} is outside AZ '{az}' ({subnet})",
                                f"an address lives in its AZ's L2 network: pick one inside {subnet}"))
        elif address in used:
            issues.append(Issue(where, f"{what}{address} is the address of {used[address]}", "give each node and VIP its own address"))
        elif address in _reserved(subnet, routed, overlay):
            issues.append(Issue(where, f"{what}{address} is reserved (gateway, router or access container)", "pick another address"))
        used[address] = owner
    return issues


def host_address(subnet: IPv4Network, index: int) -> IPv4Address:
    """The ``index``-th usable address of ``subnet`` (negative: from the end,
    -1 the last before broadcast), as ``list(subnet.hosts())[index]`` without
    listing the subnet."""
    usable = subnet.num_addresses - 2
    if not -usable <= index < usable:
        raise IndexError(f"{subnet} has no usable address {index}")
    return subnet.network_address + 1 + (index % usable)


def _reserved(subnet: IPv4Network, routed: bool, overlay: bool = False) -> set[IPv4Address]:
    """Addresses no node or VIP may take: the gateway (first), the router
    (last, when there are several AZs) and, on an overlay, the AZ's access
    container (last but one)."""
    return ({host_address(subnet, 0)} | ({host_address(subnet, -1)} if routed else set())
            | ({host_address(subnet, -2)} if overlay else set()))


def _allocate(subnet: IPv4Network, start: int, taken: set[IPv4Address]) -> IPv4Address:
    """The first free address from the ``start``-th usable one (or the 1st, in
    a subnet too small for it), never the last (the router's)."""
    usable = subnet.num_addresses - 2
    start = start if start < usable - 1 else 1
    for index in range(start, usable - 1):
        addr = host_address(subnet, index)
        if addr not in taken:
            taken.add(addr)
            return addr
    raise TopologyError("<allocation>", [Issue("azs", f"subnet {subnet} is full", "use a larger subnet")])


def plan(
    topo: Topology,
    engine: "Engine",
    source: str = "<string>",
    positions: Positions | None = None,
    taken: Iterable[IPv4Network] = (),
    routes: HostRoutes = (),
) -> LabPlan:
    """Check a topology and decide every name, address and parameter.

    :param topo: the parsed topology.
    :param engine: the engine the topology names (it adds its own rules and
        fills in its parameter defaults).
    :param taken: subnets already used on this host (other Docker networks);
        allocated subnets avoid them and given subnets must not overlap them.
    :param routes: the host's own networks (its interfaces' and routes'),
        avoided and refused the same way, each named in the error.
    :raises TopologyError: listing every problem found, with its place and fix.
    """
    positions = positions or {}
    issues = structural_issues(topo)
    params, param_issues = engine.resolve_parameters(topo.parameters)
    issues += param_issues
    if not issues:
        issues += engine.check(topo, params)
    taken, routes = list(taken), list(routes)
    for i, a in enumerate(topo.azs):
        for t in taken:
            if a.subnet is not None and a.subnet.overlaps(t):
                issues.append(Issue(f"azs[{i}].subnet", f"{a.subnet} overlaps {t}, already used on this host", "pick a free subnet, or omit it to have one allocated"))
        for net, what in routes:
            if a.subnet is not None and a.subnet.overlaps(net):
                issues.append(Issue(f"azs[{i}].subnet", f"{a.subnet} overlaps the host's own network {net} ({what}): the "
                                    "lab would take the host's traffic for it", "pick a subnet the host does not use, or "
                                    "omit it to have one allocated"))
    taken += [net for net, _ in routes]
    if issues:
        raise TopologyError(source, issues, positions)

    missing = [a for a in topo.azs if a.subnet is None]
    fresh = iter(_free_subnets(len(missing), taken + [a.subnet for a in topo.azs if a.subnet]) if missing else [])
    subnets = {a.name: a.subnet or next(fresh) for a in topo.azs}
    issues = _address_issues(topo, subnets)
    if issues:
        raise TopologyError(source, issues, positions)

    routed = len(topo.azs) > 1
    overlay = topo.network.driver == "overlay"
    where = placement(topo) if topo.hosts else {}
    azs = []
    for a in topo.azs:
        subnet = subnets[a.name]
        first = next((n.name for n in topo.nodes if n.az == a.name), None)
        azs.append(AzPlan(
            name=a.name, subnet=subnet, gateway=host_address(subnet, 0),
            router_address=host_address(subnet, -1) if routed else None, priority=a.priority,
            network=network_name(topo.name, a.name),
            host=where.get(first) if first else (topo.hosts[0].name if topo.hosts else None),
            access_address=host_address(subnet, -2) if overlay else None,
        ))
    taken_addr: dict[str, set[IPv4Address]] = {
        a.name: _reserved(subnets[a.name], routed, overlay)
        | {n.address for n in topo.nodes if n.az == a.name and n.address}
        | {v.address for v in topo.vips if v.az == a.name and v.address}
        for a in topo.azs
    }
    nodes = tuple(
        NodePlan(
            name=n.name, az=n.az, roles=tuple(n.roles),
            address=n.address or _allocate(subnets[n.az], FIRST_NODE_INDEX, taken_addr[n.az]),
            container=container_name(topo.name, n.name),
        )
        for n in topo.nodes
    )
    vips = tuple(
        VipPlan(
            name=v.name or f"vip-{v.az}", az=v.az,
            address=v.address or _allocate(subnets[v.az], FIRST_VIP_INDEX, taken_addr[v.az]),
            prefixlen=subnets[v.az].prefixlen,
        )
        for v in topo.vips
    )
    disks = tuple(
        DiskPlan(
            name=d.name, size_mb=d.size_mb, kind=d.kind,
            nodes=tuple(d.nodes) if d.nodes else tuple(n.name for n in topo.nodes),
            path=d.path or (f"/dev/cmlab-{d.name}" if d.kind == "block" else f"/mnt/{d.name}"),
        )
        for d in topo.disks
    )
    hosts = tuple(HostPlan(name=h.name, endpoint=h.endpoint, address=h.address or endpoint_host(h.endpoint) or "",
                           tls_dir=h.tls_dir) for h in topo.hosts)
    if hosts:
        nodes = tuple(n.model_copy(update={"host": where[n.name]}) for n in nodes)
    return LabPlan(
        name=topo.name, engine=topo.engine, parameters=params, network_driver=topo.network.driver,
        azs=tuple(azs), nodes=nodes, vips=vips, router=router_name(topo.name) if routed else None, disks=disks,
        hosts=hosts, router_host=hosts[0].name if hosts else None,
        mtu=(topo.network.mtu or DEFAULT_OVERLAY_MTU) if overlay else None,
    )


def load(path: str | Path, registry: "EngineRegistry", taken: Iterable[IPv4Network] = (),
         parameters: dict[str, Any] | None = None, routes: HostRoutes = ()) -> LabPlan:
    """Read, check and resolve a topology file.

    :param parameters: ``parameters:`` keys given on the command line; they
        win over the file's (:func:`with_parameters`).
    :raises TopologyError: the file cannot be used; the message names the
        file, line and column of each problem and how to fix it.
    """
    data, positions = read_yaml_file(path)
    return _plan_from_data(with_parameters(data, parameters), str(path), positions, registry, taken, routes)


def with_parameters(data: Any, parameters: dict[str, Any] | None) -> Any:
    """A copy of a parsed document whose ``parameters:`` hold ``parameters``
    too (winning over the file's); checked with the rest, as if written there."""
    if not parameters or not isinstance(data, dict):
        return data
    given = data.get("parameters")
    return {**data, "parameters": {**(given if isinstance(given, dict) else {}), **parameters}}


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings from the command line as parameters; each value
    read as a YAML scalar (``sync_num=2`` is a number, ``two_node=true`` a
    boolean, a path stays a string).

    :raises ValueError: an item without ``=``, naming it.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: write KEY=VALUE, e.g. --set package=/path/to/openGauss-All.tar.gz")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def loads(text: str, registry: "EngineRegistry", taken: Iterable[IPv4Network] = (), source: str = "<string>") -> LabPlan:
    """Like :func:`load`, from a string."""
    data, positions = load_yaml(text, source)
    return _plan_from_data(data, source, positions, registry, taken)


def without_addresses(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a parsed document with every subnet and address left out, to
    be allocated (so an example can run beside a lab of itself)."""
    strip = {"azs": "subnet", "nodes": "address", "vips": "address"}
    out = dict(data)
    for section, key in strip.items():
        if isinstance(out.get(section), list):
            out[section] = [{k: v for k, v in item.items() if k != key} if isinstance(item, dict) else item
                            for item in out[section]]
    return out


def plan_data(data: Any, source: str, positions: Positions, registry: "EngineRegistry", taken: Iterable[IPv4Network],
              routes: HostRoutes = ()) -> LabPlan:
    """Check and resolve an already parsed document (see :func:`load`)."""
    return _plan_from_data(data, source, positions, registry, taken, routes)


def _plan_from_data(data: Any, source: str, positions: Positions, registry: "EngineRegistry", taken: Iterable[IPv4Network],
                    routes: HostRoutes = ()) -> LabPlan:
    topo = parse_topology(data, source, positions)
    try:
        engine = registry.get(topo.engine)
    except KeyError as exc:
        raise TopologyError(source, [Issue("engine", str(exc.args[0]), f"use one of: {', '.join(registry.names())}")], positions) from None
    return plan(topo, engine, source, positions, taken, routes)
