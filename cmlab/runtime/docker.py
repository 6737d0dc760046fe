"""A lab's Docker objects: one network per AZ, a volume per node and duty,
one container per node, and a router container between AZs.

Everything carries the label ``cmlab.lab=<lab>``; the lab's plan rides on
each container (label ``cmlab.plan``), so a lab is read back from Docker
alone. Removal goes by label, so it also cleans a half-built lab.

A lab across hosts (overlay networks, :mod:`cmlab.runtime.hosts`) has its
containers on several Docker Engines: each object is made on its host's
engine, the AZ networks on the swarm manager, and each AZ gets an *access
container* publishing the ports cmlab connects to (:meth:`DockerNodeAccess.endpoint`).
"""

from __future__ import annotations

import io
import json
import os
import threading
import urllib.error
import tarfile
import time
import urllib.request
from email.message import Message
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any, Iterator

import tempfile
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from filelock import FileLock
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool, Mount, Ulimit

from cmlab.engines.base import ContainerSpec, FileSpec
from cmlab.errors import FaultError, LabError
from cmlab.progress import log
from cmlab.runtime.capabilities import daemon_hard_limit
from cmlab.runtime.helper import HelperRunner, Runner, create_helper, helper_name
from cmlab.runtime.http import HttpGetter
from cmlab.runtime.netns import ContainerNetns, local_addresses
from cmlab.runtime import labels as L
from cmlab.topology.plan import PREFIX, LabPlan, NodePlan

if TYPE_CHECKING:
    from cmlab.runtime.hosts import HostClients

#: Every container's entrypoint: tini as PID 1 (reaps re-parented children),
#: then cmlab-init (routes to other AZs), then the engine's command.
ENTRYPOINT = ["/usr/bin/tini", "--", "/usr/local/bin/cmlab-init"]
#: Seconds Docker waits after SIGTERM before SIGKILL on stop.
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Removed:
    """What ``down`` removed: counts of each kind of object, and the hosts of
    a lab across hosts that could not be reached (host -> why), on which its
    objects may remain."""

    containers: int
    networks: int
    volumes: int
    loop_devices: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)
    #: Objects that could not be removed, each with why (a swarm network still
    #: attached on an unreachable host).
    left: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.containers + self.networks + self.volumes + self.loop_devices


def _ulimits(spec: ContainerSpec, container: str) -> list[Ulimit] | None:
    out = []
    for name, (soft, hard) in spec.ulimits.items():
        cap = daemon_hard_limit(name)
        if cap is not None and hard > cap:
            log.warning("%s: the Docker daemon allows %s=%d at most; lowering the engine's %d", container, name, cap, hard)
            soft, hard = min(soft, cap), cap
        out.append(Ulimit(name=name, soft=soft, hard=hard))
    return out or None


def disk_volume(plan: LabPlan, disk: str) -> str:
    return f"{PREFIX}-{plan.name}-disk-{disk}"


def _tar(files: dict[str, FileSpec]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, spec in sorted(files.items()):
            data = spec.content.encode() if isinstance(spec.content, str) else spec.content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), spec.mode, spec.uid, spec.gid, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def network_lock() -> FileLock:
    """Host-wide lock held from choosing a lab's subnets to creating its
    networks, so that labs started at once (pytest-xdist workers) never pick
    the same subnet."""
    return FileLock(str(Path(tempfile.gettempdir()) / "cmlab-networks.lock"), timeout=300)


#: First container port of an access container's forwards (one port per target address and port).
ACCESS_PORT_BASE = 20000


def access_forwards(plan: LabPlan, az: str, ports: tuple[int, ...]) -> list[tuple[int, str, int]]:
    """An AZ's access forwards: ``(container port, target address, target port)``
    for each node of the AZ and its VIP, for each port cmlab connects to. A
    pure function of the plan, so any process finds a target's port again."""
    targets = [str(n.address) for n in plan.nodes if n.az == az]
    vip = plan.vip_of_az(az)
    if vip is not None:
        targets.append(str(vip.address))
    pairs = [(t, port) for t in targets for port in ports]
    return [(ACCESS_PORT_BASE + i, t, port) for i, (t, port) in enumerate(pairs)]


class DockerRuntime:
    """The lab's objects on its Docker Engine(s).

    :param owner: owner labels (:mod:`cmlab.owner`) put on every object
        created, so that ``reap`` can remove the lab once its owner is gone.
    :param hosts: the clients of a lab across hosts (None: every object is on ``client``).
    """

    def __init__(self, client: docker.DockerClient, owner: dict[str, str] | None = None,
                 hosts: "HostClients | None" = None) -> None:
        self.client = client
        self.owner = owner or {}
        self.hosts = hosts
        self._runners: dict[str, HelperRunner] = {}
        #: The access containers' published ports, read once (see :meth:`published`).
        self._published: dict[tuple[str, int], tuple[str, int]] | None = None

    @classmethod
    def for_plan(cls, plan: LabPlan, client: docker.DockerClient, owner: dict[str, str] | None = None) -> "DockerRuntime":
        """The runtime of ``plan``: on ``client`` alone, or on the plan's hosts."""
        from cmlab.runtime.hosts import HostClients

        return cls(client, owner, HostClients(plan, client) if plan.hosts else None)

    def client_of(self, host: str | None) -> docker.DockerClient:
        """The Docker client of ``host`` (None, or a one-host lab: the local one).

        :raises HostUnreachable: the host does not answer.
        """
        return self.client if self.hosts is None or host is None else self.hosts.get(host)

    def _engines(self) -> list[tuple[str | None, docker.DockerClient | None, str]]:
        """``(host, client, error)`` of every engine the lab's objects may be on."""
        if self.hosts is None:
            return [(None, self.client, "")]
        return list(self.hosts.each())

    # ---- reading labs back ----------------------------------------------------------

    def used_subnets(self, exclude_lab: str | None = None) -> list[IPv4Network]:
        """IPv4 subnets of every Docker network (but ``exclude_lab``'s own), on
        every host of the lab (an overlay must not clash with any host's bridges).

        :raises HostUnreachable: a host does not answer.
        """
        out = []
        nets = [n for _, c, _ in self._engines() if c is not None for n in c.networks.list()]
        if self.hosts is not None:
            nets += self.client.networks.list()  # cmlab reaches the published ports from here
        for net in nets:
            attrs = net.attrs
            if exclude_lab and (attrs.get("Labels") or {}).get(L.LAB) == exclude_lab:
                continue
            for cfg in (attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    out.append(IPv4Network(cfg.get("Subnet", ""), strict=False))
                except ValueError:
                    continue
        return out

    def _listed(self, filters: dict) -> list[Container]:
        """Containers matching ``filters``, stopped ones too, on every reachable host.

        ``ignore_removed``: the SDK inspects each listed container in turn, and another
        lab's ``down`` (a parallel pytest-xdist worker) may remove one in between; that
        container is gone, not an error (seen in CI as a 404 from ``reap``)."""
        return [c for _, client, _ in self._engines() if client is not None
                for c in client.containers.list(all=True, filters=filters, ignore_removed=True)]

    def labs(self) -> list[str]:
        """Names of every lab with at least one object on this engine."""
        names: set[str] = set()
        for c in self._listed({"label": L.LAB}):
            names.add(c.labels[L.LAB])
        for n in self.client.networks.list(filters={"label": L.LAB}):
            names.add((n.attrs.get("Labels") or {})[L.LAB])
        for v in self.client.volumes.list(filters={"label": L.LAB}):
            names.add((v.attrs.get("Labels") or {})[L.LAB])
        return sorted(names)

    def owner_labels(self, lab: str) -> dict[str, str]:
        """The owner labels of a lab (from any of its objects), empty if it has none."""
        from cmlab import owner

        objects = [c.labels for c in self._listed(L.lab_filter(lab))]
        objects += [n.attrs.get("Labels") or {} for n in self.client.networks.list(filters=L.lab_filter(lab))]
        objects += [v.attrs.get("Labels") or {} for v in self.client.volumes.list(filters=L.lab_filter(lab))]
        for labels in objects:
            if owner.PID in labels:
                return {k: v for k, v in labels.items() if k.startswith("cmlab.owner.")}
        return {}

    def read_plan(self, lab: str) -> LabPlan | None:
        """The plan of a lab, from any of its containers; None if it has none."""
        for c in self._listed(L.lab_filter(lab)):
            text = c.labels.get(L.PLAN)
            if text:
                return LabPlan.from_json(text)
        return None

    def containers(self, lab: str) -> list[Container]:
        return self._listed(L.lab_filter(lab))

    def container(self, node: NodePlan) -> Container | None:
        """The node's container on its host, None when it does not exist.

        :raises HostUnreachable: its host does not answer.
        """
        return self.named(node.host, node.container)

    def named(self, host: str | None, name: str) -> Container | None:
        """The container called ``name`` on ``host`` (None: the local engine, or the lab's only one)."""
        try:
            return self.client_of(host).containers.get(name)
        except NotFound:
            return None

    # ---- creating ------------------------------------------------------------------

    def _labels(self, plan: LabPlan, kind: str, **extra: str) -> dict[str, str]:
        return {L.LAB: plan.name, L.KIND: kind, L.ENGINE: plan.engine, L.DIGEST: plan.digest, **self.owner, **extra}

    def create_networks(self, plan: LabPlan) -> None:
        """One network per AZ: a bridge, or on a lab across hosts an attachable
        Swarm overlay made on the manager (the first host) with the plan's MTU."""
        for az in plan.azs:
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(az.subnet), gateway=str(az.gateway))])
            labels = self._labels(plan, "network", **{L.AZ: az.name})
            if plan.across_hosts:
                assert self.hosts is not None
                self.hosts.manager.networks.create(
                    az.network, driver="overlay", attachable=True, scope="swarm", check_duplicate=True, ipam=ipam,
                    labels=labels, options={"com.docker.network.driver.mtu": str(plan.mtu)})
            else:
                self.client.networks.create(az.network, driver="bridge", check_duplicate=True, ipam=ipam, labels=labels)

    def create_disk_volumes(self, plan: LabPlan, devices: dict[str, str]) -> None:
        """A Docker volume (local driver, ext4 on the loop device) per filesystem disk."""
        for disk in plan.disks:
            if disk.kind == "filesystem":
                self.client.volumes.create(
                    disk_volume(plan, disk.name), driver="local",
                    driver_opts={"type": "ext4", "device": devices[disk.name]},
                    labels=self._labels(plan, "volume", **{"cmlab.disk": disk.name}),
                )

    def create_node(self, plan: LabPlan, node: NodePlan, image: str, spec: ContainerSpec,
                    devices: dict[str, str] | None = None) -> Container:
        """Create (not start) a node's container with its files, volumes, disks and address.

        :param devices: disk name -> loop device (from :func:`cmlab.runtime.disks.attach`).
        """
        az = plan.az(node.az)
        devices = devices or {}
        device_rules = []
        mounts = []
        for disk in plan.disks_of(node.name):
            if disk.kind == "block":
                device_rules.append(f"{devices[disk.name]}:{disk.path}:rwm")
            else:
                mounts.append(Mount(target=disk.path, source=disk_volume(plan, disk.name), type="volume"))
        client = self.client_of(node.host)
        for target, suffix in spec.volumes.items():
            name = f"{node.container}-{suffix}"
            client.volumes.create(name, labels=self._labels(plan, "volume", **{L.NODE: node.name}))
            mounts.append(Mount(target=target, source=name, type="volume"))
        env = {
            "CMLAB_LAB": plan.name, "CMLAB_NODE": node.name, "CMLAB_AZ": node.az,
            "CMLAB_NODE_ADDRESS": str(node.address),
            "CMLAB_ROUTES": ";".join(f"{dst} {via}" for dst, via in plan.routes_for(node)),
            **spec.env,
        }
        cap_add = list(spec.cap_add)
        if plan.routes_for(node) and "NET_ADMIN" not in cap_add:
            cap_add.append("NET_ADMIN")  # cmlab-init adds the inter-AZ routes
        container = client.containers.create(
            image, command=spec.command, entrypoint=ENTRYPOINT, name=node.container, hostname=node.name,
            labels=self._labels(plan, "node", **{L.NODE: node.name, L.AZ: node.az, L.PLAN: plan.to_json()}),
            environment=env, cap_add=cap_add or None, sysctls=spec.sysctls or None,
            ulimits=_ulimits(spec, node.container),
            security_opt=spec.security_opt or None, mounts=mounts, devices=device_rules or None, stop_signal="SIGTERM",
            network=az.network,
            networking_config={az.network: client.api.create_endpoint_config(ipv4_address=str(node.address))},
        )
        if spec.files and not container.put_archive("/", _tar(spec.files)):
            raise LabError(f"could not write the configuration files into {node.container}")
        return container

    def create_router(self, plan: LabPlan, image: str) -> Container | None:
        """The router between AZs (None for a one-AZ lab): a container on every
        AZ network at the AZ's router address, forwarding between them."""
        if plan.router is None:
            return None
        first, *others = plan.azs
        assert first.router_address is not None
        client = self.client_of(plan.router_host)
        router = client.containers.create(
            image, command=["sleep", "infinity"], entrypoint=ENTRYPOINT, name=plan.router, hostname="router",
            labels=self._labels(plan, "router", **{L.PLAN: plan.to_json()}),
            sysctls={"net.ipv4.ip_forward": "1"}, cap_add=["NET_ADMIN"],
            network=first.network,
            networking_config={first.network: client.api.create_endpoint_config(ipv4_address=str(first.router_address))},
        )
        for az in others:
            # An overlay shows on a worker once a container there uses it: connect by name.
            client.api.connect_container_to_network(router.id, az.network, ipv4_address=str(az.router_address))
        return router

    def create_access(self, plan: LabPlan, image: str, ports: tuple[int, ...]) -> list[Container]:
        """Each AZ's access container (labs across hosts only): on the AZ's host,
        on its overlay at the AZ's access address, publishing one host port per
        forward of :func:`access_forwards` (Docker picks free host ports)."""
        self._published = None
        out = []
        for az in plan.azs:
            if az.access_address is None:
                continue
            forwards = access_forwards(plan, az.name, ports)
            client = self.client_of(az.host)
            out.append(client.containers.create(
                image, command=["/usr/local/bin/cmlab-access"], entrypoint=["/usr/bin/tini", "--"],
                name=az.access_container, hostname=f"{az.name}-access",
                labels=self._labels(plan, "access", **{L.AZ: az.name, L.PLAN: plan.to_json()}),
                environment={"CMLAB_FORWARDS": ";".join(f"{c} {a} {p}" for c, a, p in forwards),
                             "CMLAB_SUBNET": str(az.subnet)},
                sysctls={"net.ipv4.ip_forward": "1"}, cap_add=["NET_ADMIN"],
                ports={f"{c}/tcp": None for c, _, _ in forwards},
                network=az.network,
                networking_config={az.network: client.api.create_endpoint_config(ipv4_address=str(az.access_address))},
            ))
        return out

    def create_helpers(self, plan: LabPlan, image: str) -> list[Container]:
        """The fault helper container on each host of a lab across hosts
        (:mod:`cmlab.runtime.helper`); none for a lab on one host."""
        if self.hosts is None:
            return []
        return [create_helper(self.client_of(h.name), plan.name, h.name, image, self._labels(plan, "helper"))
                for h in plan.hosts]

    @staticmethod
    def made_on(plan: LabPlan, host: str) -> list[str]:
        """Names of the containers a lab across hosts has on ``host`` (nodes,
        the router, access containers, the helper): what may remain there
        when the host cannot be reached."""
        names = [n.container for n in plan.nodes if n.host == host]
        names += [plan.router] if plan.router and plan.router_host == host else []
        names += [a.access_container for a in plan.azs if a.access_address and a.host == host]
        return names + [helper_name(plan.name, host)]

    def runner(self, plan: LabPlan, host: str | None) -> "Runner | None":
        """How to run a program on ``host`` for faults: None on this machine
        (a lab on one host), else through the lab's helper there."""
        if self.hosts is None or host is None:
            return None
        if host not in self._runners:
            self._runners[host] = HelperRunner(self.client_of(host), plan.name, host)
        return self._runners[host]

    def start(self, containers: list[Container]) -> None:
        """Start containers (any host's), in parallel."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda c: c.start(), containers))

    # ---- removing ------------------------------------------------------------------

    def remove(self, lab: str) -> Removed:
        """Remove every object labelled with ``lab``: containers (killed), then
        networks, then volumes, on every host of the lab. Safe to run twice and
        on a half-built lab; a host that does not answer is skipped and named
        in :attr:`Removed.unreachable`."""

        def rm_container(c: Container) -> int:
            try:
                c.remove(force=True, v=True)
                return 1
            except NotFound:
                return 0

        self._published = None
        engines = self._engines()
        unreachable = {host: error for host, client, error in engines if client is None and host is not None}
        clients = [client for _, client, _ in engines if client is not None]
        with ThreadPoolExecutor(max_workers=8) as pool:
            containers = sum(pool.map(rm_container, self.containers(lab)))
        networks = volumes = 0
        left = []
        manager = None if self.hosts is None or self.hosts.names[0] in unreachable else self.hosts.manager
        for client in clients:
            for net in client.networks.list(filters=L.lab_filter(lab)):
                if net.attrs.get("Scope") == "swarm" and client is not manager:
                    continue  # a worker shows a swarm's overlay but only a manager removes it
                try:
                    net.remove()
                    networks += 1
                except NotFound:
                    pass
                except APIError as exc:
                    if not unreachable or "in use" not in str(exc):
                        raise
                    # The swarm keeps an overlay while a host it cannot reach has a container on it.
                    left.append(f"network {net.name}: still attached on {', '.join(sorted(unreachable))} "
                                "(`cmlab down` again once it answers; if it is gone for good, `docker node rm "
                                "--force` it on the manager first)")
        for client in clients:
            for vol in client.volumes.list(filters=L.lab_filter(lab)):
                try:
                    vol.remove(force=True)
                    volumes += 1
                except NotFound:
                    pass
        return Removed(containers, networks, volumes, unreachable=unreachable, left=left)

    def leftovers(self, lab: str | None = None) -> dict[str, list[str]]:
        """Names of objects still labelled ``cmlab.lab`` (of ``lab``, or of any
        lab); on a lab across hosts each name is ``<host>/<name>``, and a host
        that does not answer is listed under ``unreachable``."""
        f = L.lab_filter(lab) if lab else {"label": [L.LAB]}
        out: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
        for host, client, error in self._engines():
            if client is None:
                out.setdefault("unreachable", []).append(f"{host}: {error}")
                continue
            at = f"{host}/" if host else ""
            out["containers"] += [at + c.name for c in client.containers.list(all=True, filters=f, ignore_removed=True)]
            out["networks"] += [at + n.name for n in client.networks.list(filters=f)]
            out["volumes"] += [at + v.name for v in client.volumes.list(filters=f)]
        return out

    # ---- reaching nodes --------------------------------------------------------------

    def access(self, plan: LabPlan) -> "DockerNodeAccess":
        return DockerNodeAccess(self, plan)

    def published(self, plan: LabPlan) -> dict[tuple[str, int], tuple[str, int]]:
        """A lab across hosts: ``(address, port)`` in the lab -> ``(host address,
        published port)`` where cmlab reaches it, read from the access
        containers (their forwards and Docker's port bindings); empty for a
        lab on one host, whose networks cmlab is on.

        Read from Docker once per runtime (every status poll asks), and again
        after :meth:`create_access` or :meth:`remove`, which change it.

        :raises LabError: an access container is missing or publishes nothing.
        """
        if self._published is not None:
            return self._published
        out: dict[tuple[str, int], tuple[str, int]] = {}
        for az in plan.azs:
            if az.access_address is None or az.host is None:
                continue
            c = self.named(az.host, az.access_container)
            if c is None:
                raise LabError(f"AZ {az.name}: access container {az.access_container} is missing on host {az.host}")
            env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"] or [] if "=" in e)
            bindings = c.attrs["NetworkSettings"]["Ports"] or {}
            for fwd in filter(None, env.get("CMLAB_FORWARDS", "").split(";")):
                cport, address, port = fwd.split()
                bound = bindings.get(f"{cport}/tcp") or []
                if not bound:
                    raise LabError(f"AZ {az.name}: {az.access_container} publishes no port for {address}:{port} "
                                   "(is it running?)")
                out[(address, int(port))] = (plan.host(az.host).address, int(bound[0]["HostPort"]))
        self._published = out
        return out

    def vip_holders(self, plan: LabPlan) -> dict[str, list[str]]:
        """For each VIP, the nodes that hold its address now (more than one is a
        duplicate address; none means the VIP is down)."""
        access = self.access(plan)
        out: dict[str, list[str]] = {v.name: [] for v in plan.vips}
        for node in plan.nodes:
            vip = plan.vip_of_az(node.az)
            if vip is None or not access.running(node):
                continue
            if vip.address in access.addresses(node):
                out[vip.name].append(node.name)
        return out


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Output chunks as whole lines (the last one even without its newline)."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if rest:
        yield rest.decode(errors="replace")


class DockerNodeAccess:
    """:class:`cmlab.engines.base.NodeAccess` over Docker: HTTP straight to the
    node's address (the host is on every AZ bridge) or, on a lab across hosts,
    to the port its AZ's access container publishes for it; commands by
    ``docker exec`` on the node's host."""

    def __init__(self, runtime: DockerRuntime, plan: LabPlan) -> None:
        self.runtime = runtime
        self.plan = plan
        # Kept-alive HTTP connections, one set per thread: observers poll every
        # few tens of milliseconds, and a new TCP connection each time costs CPU.
        self._local = threading.local()

    def endpoint(self, address: str | IPv4Address, port: int) -> tuple[str, int]:
        """Where cmlab connects to reach ``address:port`` of the lab (a node or
        a VIP): itself on one host; ``(host address, published port)`` across hosts.

        :raises LabError: no access container forwards it.
        """
        if self.runtime.hosts is None:
            return str(address), port
        try:
            return self.runtime.published(self.plan)[(str(address), port)]
        except KeyError:
            raise LabError(f"{address}:{port} is not published by the lab's access containers "
                           "(only the engine's client ports of nodes and VIPs are)") from None

    def http_get(self, node: NodePlan, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
        """GET: ``(status, body)``. Raises ``OSError`` when the node does not answer."""
        getters: dict[tuple[str, int], HttpGetter] = self._local.__dict__.setdefault("getters", {})
        key = self.endpoint(node.address, port)
        getter = getters.get(key)
        if getter is None:
            getter = getters[key] = HttpGetter(*key)
        response = getter.get(path, timeout_s)
        return response.status, response.body

    def http_json(self, node: NodePlan, port: int, path: str, timeout_s: float) -> Any:
        """GET and decode JSON. Raises ``urllib.error.HTTPError`` for a status
        other than 200 (with the body), ``OSError`` when the node does not answer."""
        status, body = self.http_get(node, port, path, timeout_s)
        if status != 200:
            raise urllib.error.HTTPError(f"http://{node.address}:{port}{path}", status, f"HTTP {status}", Message(),
                                         io.BytesIO(body))
        return json.loads(body)

    def http_post(self, node: NodePlan, port: int, path: str, body: Any, timeout_s: float, method: str = "POST") -> tuple[int, str]:
        host, port = self.endpoint(node.address, port)
        req = urllib.request.Request(f"http://{host}:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def exec(self, node: NodePlan, argv: list[str], user: str = "root") -> tuple[int, str]:
        c = self.runtime.container(node)
        if c is None:
            raise LabError(f"node {node.name}: container {node.container} does not exist")
        try:
            code, out = c.exec_run(argv, user=user)
        except APIError as exc:
            raise LabError(f"node {node.name}: cannot run {argv[0]}: {exc.explanation}") from None
        return code, out.decode(errors="replace")

    def stream(self, node: NodePlan, argv: list[str], user: str = "root") -> Iterator[str]:
        """Run a long-lived command in the node's container; yield its output lines
        (stdout and stderr) as they come. Ends when the command exits or the
        container stops.

        :raises LabError: the container does not exist or refuses the exec.
        """
        c = self.runtime.container(node)
        if c is None:
            raise LabError(f"node {node.name}: container {node.container} does not exist")
        api = self.runtime.client.api
        try:
            exec_id = api.exec_create(c.id, argv, user=user, stdout=True, stderr=True)["Id"]
            chunks = api.exec_start(exec_id, stream=True)
        except APIError as exc:
            raise LabError(f"node {node.name}: cannot run {argv[0]}: {exc.explanation}") from None
        return _lines(chunks)

    def running(self, node: NodePlan) -> bool:
        c = self.runtime.container(node)
        return c is not None and c.status == "running"

    def addresses(self, node: NodePlan) -> set[IPv4Address]:
        """IPv4 addresses on the node's interfaces (empty if it cannot be asked).
        As root, read from the host through the node's namespace (a few
        milliseconds); otherwise, and for a node on another host, with
        ``docker exec ip`` (tens)."""
        if os.geteuid() == 0 and node.host is None:
            c = self.runtime.container(node)
            if c is None or c.status not in ("running", "paused"):
                return set()
            try:
                return {IPv4Address(a) for a in local_addresses(ContainerNetns(c).pid)}
            except (FaultError, OSError):
                return set()
        try:
            code, out = self.exec(node, ["ip", "-4", "-o", "addr", "show"])
        except LabError:
            return set()
        if code != 0:
            return set()
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                found.add(IPv4Address(parts[parts.index("inet") + 1].split("/")[0]))
        return found
