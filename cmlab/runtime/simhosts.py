"""Docker hosts simulated on one machine, for labs across hosts.

Each simulated host is a privileged container running Debian's own Docker
Engine (``images/swarm-host``), with its ``/var/lib/docker`` on a volume and
its API socket bind-mounted to ``/run/cmlab-hosts/<set>/<host>/docker.sock``
on this machine, so cmlab reaches it as ``unix://...`` like any other host.
The hosts of a set share one bridge network, on which they form a Docker
Swarm (``cmlab up --init-swarm``) and carry its VXLAN traffic.

Every object carries the label ``cmlab.hostset=<set>`` (never ``cmlab.lab``:
a set is the machines a lab runs on, not part of a lab) and :meth:`down`
removes them all. Used by the tests and benchmarks of labs across hosts and by
``cmlab hosts up|down`` for users who want to try one on one machine.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool, Mount

from cmlab.engines.base import ImageRecipe
from cmlab.errors import LabError
from cmlab.images.build import ImageBuilder
from cmlab.progress import Progress, Quiet
from cmlab.runtime.docker import DockerRuntime, network_lock
from cmlab.state import remove_lab_state, saved_labs, saved_plan

LABEL = "cmlab.hostset"
RECIPE = ImageRecipe(name="swarm-host", folder="swarm-host")
#: Where the hosts' networks come from: /24s of this /16, beside the labs' pool.
POOL = IPv4Network("10.214.0.0/16")
#: Host hN gets the address of index FIRST_HOST_INDEX + N - 1 in the set's
#: subnet (10.214.0.11 for h1 in the first /24), so topologies can name it.
FIRST_HOST_INDEX = 10
#: Where the hosts' API sockets appear on this machine.
SOCKET_ROOT = Path("/run/cmlab-hosts")
#: Capabilities of a simulated host: every one but CAP_SYS_RESOURCE. Not
#: ``--privileged``, which asks for all of them: a Docker daemon that itself
#: lacks CAP_SYS_RESOURCE (seen on this project's CI machines, where root cannot
#: raise the open-files limit either) cannot start such a container
#: ("unable to apply caps: operation not permitted").
CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
    "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
]
#: Seconds a simulated host's dockerd may take to answer after its container starts.
DOCKERD_START_S = 60


@dataclass(frozen=True)
class SimulatedHost:
    name: str
    container: str
    address: str
    endpoint: str

    def topology_entry(self) -> dict[str, str]:
        """This host as an entry of a topology's ``hosts:``."""
        return {"name": self.name, "endpoint": self.endpoint, "address": self.address}


class SimulatedHosts:
    """A set of simulated Docker hosts called ``h1`` .. ``h<count>``.

    :param client: the Docker Engine of this machine.
    :param name: the set's name (objects are ``cmlab-hosts-<name>-...``).
    """

    def __init__(self, client: docker.DockerClient, name: str = "sim", count: int = 3,
                 progress: Progress | None = None) -> None:
        self.client = client
        self.name = name
        self.count = count
        self.progress = progress or Quiet()
        self.prefix = f"cmlab-hosts-{name}"

    @property
    def network(self) -> str:
        return self.prefix

    def _socket_dir(self, host: str) -> Path:
        return SOCKET_ROOT / self.name / host

    def _labels(self, **extra: str) -> dict[str, str]:
        return {LABEL: self.name, **extra}

    def hosts(self) -> list[SimulatedHost]:
        """The set's hosts that exist now, with their addresses."""
        out = []
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"}, ignore_removed=True):
            host = c.labels.get("cmlab.host", "")
            nets = c.attrs["NetworkSettings"]["Networks"]
            address = (nets.get(self.network) or {}).get("IPAddress", "")
            out.append(SimulatedHost(host, c.name, address, f"unix://{self._socket_dir(host)}/docker.sock"))
        return sorted(out, key=lambda h: h.name)

    def up(self) -> list[SimulatedHost]:
        """Build the host image if needed, start the hosts, and wait until
        each one's Docker Engine answers (at most :data:`DOCKERD_START_S`
        seconds). Idempotent: hosts already running are kept.

        :raises LabError: a host's engine did not answer (the set is removed).
        """
        image = ImageBuilder(self.client, self.progress).engine(RECIPE).tag
        try:
            with network_lock():
                try:
                    self.client.networks.get(self.network)
                except NotFound:
                    taken = DockerRuntime(self.client).used_subnets()
                    subnet = next(s for s in POOL.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken))
                    self.client.networks.create(
                        self.network, driver="bridge", labels=self._labels(),
                        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]))
            subnet = IPv4Network(self.client.networks.get(self.network).attrs["IPAM"]["Config"][0]["Subnet"])
            existing = {h.name for h in self.hosts()}
            for i in range(1, self.count + 1):
                host = f"h{i}"
                if host not in existing:
                    self._create(host, image, str(list(subnet.hosts())[FIRST_HOST_INDEX + i - 1]))
            for h in self.hosts():
                self._wait_dockerd(h)
        except BaseException:
            self.down()
            raise
        return self.hosts()

    def _create(self, host: str, image: str, address: str) -> None:
        sockets = self._socket_dir(host)
        sockets.mkdir(parents=True, exist_ok=True)
        volume = f"{self.prefix}-{host}-docker"
        self.client.volumes.create(volume, labels=self._labels(**{"cmlab.host": host}))
        with self.progress.step(f"starting simulated host {host}"):
            # What a nested Docker Engine needs short of --privileged: the
            # capabilities, no seccomp or AppArmor filter, /proc and /sys paths
            # neither masked nor read-only (the CLI's "systempaths=unconfined",
            # which the API spells as two empty lists), the cgroup tree writable.
            api = self.client.api
            host_config = api.create_host_config(
                cap_add=CAPABILITIES, security_opt=["seccomp=unconfined", "apparmor=unconfined"],
                mounts=[Mount("/var/lib/docker", volume, type="volume"),
                        Mount("/run/cmlab-ext", str(sockets), type="bind"),
                        Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind")],
                network_mode=self.network)
            host_config.update({"MaskedPaths": [], "ReadonlyPaths": []})
            created = api.create_container(
                image, name=f"{self.prefix}-{host}", hostname=host, host_config=host_config,
                labels=self._labels(**{"cmlab.host": host}),
                environment={"CMLAB_DOCKER_SOCKET": "/run/cmlab-ext/docker.sock"},
                networking_config=api.create_networking_config(
                    {self.network: api.create_endpoint_config(ipv4_address=address)}))
            api.start(created["Id"])

    def client_of(self, host: SimulatedHost, timeout_s: int = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=host.endpoint, timeout=timeout_s)

    def _wait_dockerd(self, host: SimulatedHost) -> None:
        deadline = time.monotonic() + DOCKERD_START_S
        last = ""
        while time.monotonic() < deadline:
            try:
                self.client_of(host, 5).ping()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet; reported at the deadline
                last = str(exc)
            time.sleep(0.5)
        logs = self.client.containers.get(host.container).logs(tail=20).decode(errors="replace")
        raise LabError(f"simulated host {host.name}: its Docker Engine did not answer within {DOCKERD_START_S} s "
                       f"({last}); its log:\n{logs}")

    def kill(self, host: str) -> None:
        """Kill a host's container (the machine is lost, with everything on it)."""
        self.client.containers.get(f"{self.prefix}-{host}").kill()

    def start(self, host: str) -> SimulatedHost:
        """Start a killed host again and wait for its Docker Engine (its
        containers stay stopped, as on a machine that rebooted).

        :raises LabError: its engine did not answer within :data:`DOCKERD_START_S` seconds.
        """
        self.client.containers.get(f"{self.prefix}-{host}").start()
        found = next(h for h in self.hosts() if h.name == host)
        self._wait_dockerd(found)
        return found

    def down(self) -> dict[str, int]:
        """Remove every object of the set (containers, volumes, network, socket
        folders). Safe to run twice. Returns counts by kind."""
        removed = {"containers": 0, "volumes": 0, "networks": 0}
        f = {"label": f"{LABEL}={self.name}"}
        for c in self.client.containers.list(all=True, filters=f, ignore_removed=True):
            try:
                c.remove(force=True, v=True)
                removed["containers"] += 1
            except NotFound:
                pass
        for v in self.client.volumes.list(filters=f):
            try:
                v.remove(force=True)
                removed["volumes"] += 1
            except (NotFound, APIError):
                pass
        for n in self.client.networks.list(filters=f):
            try:
                n.remove()
                removed["networks"] += 1
            except NotFound:
                pass
        shutil.rmtree(SOCKET_ROOT / self.name, ignore_errors=True)
        # The labs that ran on these hosts went with them: forget their saved plans.
        for lab in saved_labs():
            plan = saved_plan(lab)
            if plan is not None and plan.hosts and all(h.endpoint.startswith(f"unix://{SOCKET_ROOT / self.name}/")
                                                       for h in plan.hosts):
                remove_lab_state(lab)
                removed["labs"] = removed.get("labs", 0) + 1
        return removed

    def leftovers(self) -> dict[str, Any]:
        f = {"label": f"{LABEL}={self.name}"}
        return {"containers": [c.name for c in self.client.containers.list(all=True, filters=f, ignore_removed=True)],
                "volumes": [v.name for v in self.client.volumes.list(filters=f)],
                "networks": [n.name for n in self.client.networks.list(filters=f)]}
