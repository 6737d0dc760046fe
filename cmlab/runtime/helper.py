"""Commands on a lab's host, for faults on a lab across hosts.

Faults enter a node's network namespace and signal its processes from the
host (:mod:`cmlab.runtime.netns`). On one host cmlab runs there itself; on a
remote host a *helper container* does it for cmlab: one per host of the lab
(``cmlab-<lab>-helper-<host>``, labelled with the lab), from cmlab's helper
image (the base plus nftables and arping), sharing the host's PID and network
namespaces so that a container's PID as that host's Docker reports it is
the helper's too. Each command is a ``docker exec`` in it (tens of
milliseconds), and every operation keeps the same whole-or-nothing apply and
exact undo as on one host, because it is the same code with another runner.
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Protocol

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from cmlab.errors import FaultError

#: Capabilities the helper needs: enter namespaces (SYS_ADMIN, SYS_PTRACE),
#: nftables and tc (NET_ADMIN), signals to other users' processes (KILL), raw ARP (NET_RAW).
HELPER_CAPABILITIES = ["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "NET_RAW", "KILL"]
#: Longest a command in the helper may take, seconds.
HELPER_TIMEOUT_S = 10


def helper_name(lab: str, host: str) -> str:
    return f"cmlab-{lab}-helper-{host}"


class Runner(Protocol):
    """Runs a program on a host: ``argv`` with ``stdin``; never raises for its exit code."""

    def __call__(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess: ...


class HelperRunner:
    """On a remote host, in the lab's helper container there.

    :raises FaultError: (when called) the helper is missing or refuses the exec.
    """

    def __init__(self, client: docker.DockerClient, lab: str, host: str) -> None:
        self.client = client
        self.host = host
        self.name = helper_name(lab, host)
        self._container: Container | None = None

    def _helper(self) -> Container:
        if self._container is None:
            try:
                self._container = self.client.containers.get(self.name)
            except NotFound:
                raise FaultError(f"host {self.host}: the lab's helper container {self.name} is missing "
                                 "(`cmlab up` makes it; was it removed?)") from None
        return self._container

    def __call__(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        # The SDK's exec cannot feed standard input: pass it as an argument.
        command = shlex.join(argv) if stdin is None else f"printf %s {shlex.quote(stdin)} | {shlex.join(argv)}"
        try:
            result = self._helper().exec_run(["timeout", str(HELPER_TIMEOUT_S), "sh", "-c", command], demux=True)
        except APIError as exc:
            raise FaultError(f"host {self.host}: cannot run {argv[0]} in {self.name}: {exc.explanation}") from None
        out, err = result.output or (None, None)
        return subprocess.CompletedProcess(argv, result.exit_code, (out or b"").decode(errors="replace"),
                                           (err or b"").decode(errors="replace"))


def create_helper(client: docker.DockerClient, lab: str, host: str, image: str, labels: dict[str, str]) -> Container:
    """Create (not start) the helper container of ``lab`` on ``host``."""
    return client.containers.create(
        image, command=["sleep", "infinity"], entrypoint=["/usr/bin/tini", "--"], name=helper_name(lab, host),
        labels=labels, pid_mode="host", network_mode="host", cap_add=HELPER_CAPABILITIES,
        security_opt=["apparmor=unconfined"],
    )
