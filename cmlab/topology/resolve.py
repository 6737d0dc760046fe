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
from cmlab.topology.plan import AzPlan, DiskPlan, LabPlan, NodePlan, VipPlan, container_name, network_name, router_name
from cmlab.topology.schema import NAME_HINT, Topology
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


def pydantic_issues(exc: ValidationError, prefix: str = "", schema_command: str = "cmlab schema") -> list[Issue]:
    """One :class:`Issue` per pydantic error, with its document path and a fix."""
    issues = []
    for err in exc.errors():
        where = prefix
        for part in err["loc"]:
            where = join_path(where, part)
        msg = err["msg"]
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
        if s.num_addresses < 16:
            issues.append(Issue(f"azs[{i}].subnet", f"{s} is too small", "use a /28 or larger (a /24 is usual)"))
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
    if topo.network.driver == "overlay":
        issues.append(Issue("network.driver", "the overlay driver is not supported yet", "use driver: bridge (one host)"))
    return issues


def _address_issues(topo: Topology, subnets: dict[str, IPv4Network]) -> list[Issue]:
    """Given node and VIP addresses: inside their AZ, not reserved, not shared."""
    issues: list[Issue] = []
    given = {a.name for a in topo.azs if a.subnet is not None}
    routed = len(subnets) > 1
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
        elif address in _reserved(subnet, routed):
            issues.append(Issue(where, f"{what}{address} is reserved (gateway or router)", "pick another address"))
        used[address] = owner
    return issues


def _reserved(subnet: IPv4Network, routed: bool) -> set[IPv4Address]:
    hosts = list(subnet.hosts())
    return {hosts[0], hosts[-1]} if routed else {hosts[0]}


def _allocate(subnet: IPv4Network, start: int, taken: set[IPv4Address]) -> IPv4Address:
    hosts = list(subnet.hosts())
    start = start if start < len(hosts) - 1 else 1
    for addr in hosts[start:-1]:
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
) -> LabPlan:
    """Check a topology and decide every name, address and parameter.

    :param topo: the parsed topology.
    :param engine: the engine the topology names (it adds its own rules and
        fills in its parameter defaults).
    :param taken: subnets already used on this host (other Docker networks);
        allocated subnets avoid them and given subnets must not overlap them.
    :raises TopologyError: listing every problem found, with its place and fix.
    """
    positions = positions or {}
    issues = structural_issues(topo)
    params, param_issues = engine.resolve_parameters(topo.parameters)
    issues += param_issues
    if not issues:
        issues += engine.check(topo, params)
    taken = list(taken)
    for i, a in enumerate(topo.azs):
        for t in taken:
            if a.subnet is not None and a.subnet.overlaps(t):
                issues.append(Issue(f"azs[{i}].subnet", f"{a.subnet} overlaps {t}, already used on this host", "pick a free subnet, or omit it to have one allocated"))
    if issues:
        raise TopologyError(source, issues, positions)

    missing = [a for a in topo.azs if a.subnet is None]
    fresh = iter(_free_subnets(len(missing), taken + [a.subnet for a in topo.azs if a.subnet]) if missing else [])
    subnets = {a.name: a.subnet or next(fresh) for a in topo.azs}
    issues = _address_issues(topo, subnets)
    if issues:
        raise TopologyError(source, issues, positions)

    routed = len(topo.azs) > 1
    azs = []
    for a in topo.azs:
        hosts = list(subnets[a.name].hosts())
        azs.append(AzPlan(
            name=a.name, subnet=subnets[a.name], gateway=hosts[0],
            router_address=hosts[-1] if routed else None, priority=a.priority,
            network=network_name(topo.name, a.name),
        ))
    taken_addr: dict[str, set[IPv4Address]] = {
        a.name: _reserved(subnets[a.name], routed)
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
    return LabPlan(
        name=topo.name, engine=topo.engine, parameters=params, network_driver=topo.network.driver,
        azs=tuple(azs), nodes=nodes, vips=vips, router=router_name(topo.name) if routed else None, disks=disks,
    )


def load(path: str | Path, registry: "EngineRegistry", taken: Iterable[IPv4Network] = (),
         parameters: dict[str, Any] | None = None) -> LabPlan:
    """Read, check and resolve a topology file.

    :param parameters: ``parameters:`` keys given on the command line; they
        win over the file's (:func:`with_parameters`).
    :raises TopologyError: the file cannot be used; the message names the
        file, line and column of each problem and how to fix it.
    """
    data, positions = read_yaml_file(path)
    return _plan_from_data(with_parameters(data, parameters), str(path), positions, registry, taken)


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


def plan_data(data: Any, source: str, positions: Positions, registry: "EngineRegistry", taken: Iterable[IPv4Network]) -> LabPlan:
    """Check and resolve an already parsed document (see :func:`load`)."""
    return _plan_from_data(data, source, positions, registry, taken)


def _plan_from_data(data: Any, source: str, positions: Positions, registry: "EngineRegistry", taken: Iterable[IPv4Network]) -> LabPlan:
    topo = parse_topology(data, source, positions)
    try:
        engine = registry.get(topo.engine)
    except KeyError as exc:
        raise TopologyError(source, [Issue("engine", str(exc.args[0]), f"use one of: {', '.join(registry.names())}")], positions) from None
    return plan(topo, engine, source, positions, taken)
