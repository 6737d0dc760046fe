"""The Docker hosts of a lab across hosts: connecting, the swarm, the images.

A lab whose AZ networks are Swarm overlays (``network: {driver: overlay}``)
names its hosts in the topology (:class:`~cmlab.topology.plan.HostPlan`):
each is a Docker Engine endpoint. The hosts must be nodes of one Docker Swarm,
whose first host (of the topology) is a manager: overlay networks are made
there. Images are built on the machine cmlab runs on and copied to each host
that lacks them (``docker save`` | ``docker load`` over the endpoint), so no
registry is needed anywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from cmlab.errors import CmlabError, LabError
from cmlab.progress import Progress, Quiet
from cmlab.topology.plan import HostPlan, LabPlan

if TYPE_CHECKING:
    from cmlab.runtime.capabilities import Capability
    from cmlab.runtime.helper import Runner

#: Seconds of a request to a host's Docker Engine.
HOST_TIMEOUT_S = 120
#: Swarm's manager port (``docker swarm join HOST:2377``).
SWARM_PORT = 2377


class HostUnreachable(LabError):
    """A host's Docker Engine does not answer; names the host and its endpoint."""


def connect_host(host: HostPlan, timeout_s: float = HOST_TIMEOUT_S) -> docker.DockerClient:
    """A client for ``host``'s Docker Engine.

    :raises HostUnreachable: the endpoint cannot be reached (the message names
        the host, the endpoint and what Docker said).
    """
    try:
        if "://" in host.endpoint:
            tls: docker.tls.TLSConfig | bool = False
            if host.tls_dir:
                tls = docker.tls.TLSConfig(
                    client_cert=(os.path.join(host.tls_dir, "cert.pem"), os.path.join(host.tls_dir, "key.pem")),
                    ca_cert=os.path.join(host.tls_dir, "ca.pem"), verify=True)
            client = docker.DockerClient(base_url=host.endpoint, tls=tls, timeout=int(timeout_s),
                                         use_ssh_client=host.endpoint.startswith("ssh://"))
        else:
            context = docker.ContextAPI.get_context(host.endpoint)
            if context is None:
                raise HostUnreachable(f"host {host.name}: no docker context '{host.endpoint}' (`docker context ls`)")
            client = docker.DockerClient(base_url=context.Host, tls=context.TLSConfig or False, timeout=int(timeout_s))
        client.ping()
    except HostUnreachable:
        raise
    except DockerException as exc:
        raise HostUnreachable(f"host {host.name}: cannot reach its Docker Engine at {host.endpoint} ({exc})") from None
    return client


class HostClients:
    """One Docker client per host of a plan, made on first use and kept.

    :param local: the client of the machine cmlab runs on (builds images).
    """

    def __init__(self, plan: LabPlan, local: docker.DockerClient) -> None:
        self.plan = plan
        self.local = local
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    def get(self, host: str | None) -> docker.DockerClient:
        """The client of ``host`` (None: the local engine).

        :raises HostUnreachable: it does not answer.
        """
        if host is None:
            return self.local
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                client = self._clients[host] = connect_host(self.plan.host(host))
            return client

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.plan.hosts]

    def each(self) -> Iterator[tuple[str, docker.DockerClient | None, str]]:
        """``(host, client, error)`` for every host: a client, or None and why not."""
        for name in self.names:
            try:
                yield name, self.get(name), ""
            except HostUnreachable as exc:
                yield name, None, str(exc)

    @property
    def manager(self) -> docker.DockerClient:
        """The first host's client: overlay networks are made there."""
        return self.get(self.names[0])


@dataclass(frozen=True)
class SwarmState:
    """A host's view of the swarm: ``state`` is Docker's LocalNodeState."""

    host: str
    state: str
    #: The host's node ID in its swarm (empty when in none).
    node_id: str
    manager: bool
    address: str


def swarm_state(host: str, client: docker.DockerClient) -> SwarmState:
    info = client.info().get("Swarm") or {}
    return SwarmState(host, info.get("LocalNodeState", "inactive"), info.get("NodeID", ""),
                      bool(info.get("ControlAvailable")), info.get("NodeAddr", ""))


def ensure_swarm(clients: HostClients, init: bool = False, progress: Progress | None = None) -> list[SwarmState]:
    """Check that the plan's hosts are nodes of one swarm whose first host is
    a manager; with ``init``, make the first host a manager (if it is in no
    swarm) and join every host that is in none.

    The swarm belongs to the hosts, not to the lab: ``down`` leaves it, as other
    labs may use it (``docker swarm leave --force`` on each host dissolves it).

    :raises LabError: a host is unreachable, in another swarm, or not joined
        (without ``init``); the message says which host and how to fix it.
    """
    progress = progress or Quiet()
    states = [swarm_state(name, clients.get(name)) for name in clients.names]
    first, *_ = clients.plan.hosts
    if init and states[0].state == "inactive":
        with progress.step(f"making {first.name} a swarm manager ({first.address})"):
            clients.get(first.name).swarm.init(advertise_addr=first.address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
        states[0] = swarm_state(first.name, clients.get(first.name))
    if not states[0].manager:
        raise LabError(f"host {first.name} ({first.endpoint}) is not a swarm manager (swarm: {states[0].state}); "
                       "overlay networks are made on the first host: run `cmlab up --init-swarm` to make one, or "
                       f"`docker swarm init --advertise-addr {first.address}` there")
    manager = clients.get(first.name)
    members = {n.id for n in manager.nodes.list()}  # a worker knows its node ID, not its swarm's
    for i, (host, state) in enumerate(zip(clients.plan.hosts, states)):
        if state.state == "active" and state.node_id in members:
            continue
        if state.state == "inactive" and init:
            token = manager.swarm.attrs["JoinTokens"]["Worker"]
            with progress.step(f"joining {host.name} to the swarm"):
                try:
                    clients.get(host.name).swarm.join(remote_addrs=[f"{first.address}:{SWARM_PORT}"], join_token=token,
                                                      advertise_addr=host.address, listen_addr=f"0.0.0.0:{SWARM_PORT}")
                except APIError as exc:
                    raise LabError(f"host {host.name} could not join the swarm of {first.name} at "
                                   f"{first.address}:{SWARM_PORT}: {exc.explanation}") from None
            states[i] = swarm_state(host.name, clients.get(host.name))
            continue
        why = "is in another swarm" if state.state == "active" else f"is in no swarm ({state.state})"
        raise LabError(f"host {host.name} ({host.endpoint}) {why}; the lab's hosts must form one swarm with "
                       f"{first.name} as a manager: run `cmlab up --init-swarm`, or `docker swarm join` it to {first.name}")
    return states


def image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except ImageNotFound:
        return None


def ship_images(clients: HostClients, hosts: list[str], tags: list[str], progress: Progress | None = None) -> list[str]:
    """Copy each image in ``tags`` from the local engine to each host of
    ``hosts`` that lacks it or holds another image under that tag (``docker
    save`` streamed into ``docker load``, hosts in parallel).

    :returns: ``"<host> <tag>"`` for each copy made.
    :raises LabError: a save or load failed (naming host and image).
    """
    progress = progress or Quiet()
    wanted = [(h, t) for t in tags for h in hosts if image_id(clients.get(h), t) != image_id(clients.local, t)]

    def ship(item: tuple[str, str]) -> str:
        host, tag = item
        try:
            clients.get(host).images.load(clients.local.images.get(tag).save(named=True))
        except (APIError, ImageNotFound) as exc:
            raise LabError(f"copying image {tag} to host {host} failed: {exc}") from None
        return f"{host} {tag}"

    if not wanted:
        return []
    with progress.step(f"copying {len({t for _, t in wanted})} image(s) to {len({h for h, _ in wanted})} host(s)"), \
            ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(ship, wanted))


def host_report(clients: HostClients, runner_of: Callable[[str], "Runner | None"]) -> dict[str, list["Capability"]]:
    """``cmlab doctor`` for each host of a lab across hosts: its engine, its
    place in the swarm, and (when the lab's helper runs there) the kernel
    features its faults need, probed as on this machine.

    :param runner_of: the lab's helper runner of a host (None: no helper there).
    """
    from cmlab.runtime.capabilities import PROBED, Capability, remote_probe

    out: dict[str, list[Capability]] = {}
    members: set[str] | None = None
    for name in clients.names:
        caps: list[Capability] = []
        try:
            client = clients.get(name)
            info = client.info()
        except (LabError, DockerException) as exc:
            out[name] = [Capability("docker", False, str(exc), "the lab's containers on this host")]
            continue
        caps.append(Capability("docker", True, f"Docker {info.get('ServerVersion')}, kernel {info.get('KernelVersion')}, "
                               f"{info.get('NCPU')} CPUs", "the lab's containers on this host"))
        state = swarm_state(name, client)
        if members is None and name == clients.names[0] and state.manager:
            members = {n.id for n in client.nodes.list()}
        joined = state.state == "active" and (members is None or state.node_id in members)
        caps.append(Capability("swarm", joined, f"swarm {state.state}" + (", manager" if state.manager else "")
                               + ("" if joined else f"; not in {clients.names[0]}'s swarm (cmlab up --init-swarm)"),
                               "overlay AZ networks"))
        runner = runner_of(name)
        probed: dict[str, tuple[bool, str]] = {}
        if runner is not None:
            try:
                probed = remote_probe(runner)
            except CmlabError as exc:
                probed = {k: (False, str(exc)) for k, _ in PROBED}
        for key, enables in PROBED:
            ok, detail = probed.get(key, (False, "unknown: the lab's helper is not running there (cmlab up makes it)"))
            caps.append(Capability(key, ok, detail, enables))
        out[name] = caps
    return out
