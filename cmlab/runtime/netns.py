"""A running container's network namespace, entered from the host.

Faults are injected from the host (pyroute2 on ``/proc/<pid>/ns/net``, and
the host's ``nft`` / ``arping`` run under ``nsenter --net``), so the images
need neither the tools nor the capabilities. This needs root on the host.
On a lab across hosts, a container of a remote host is entered by the lab's
helper container there (:mod:`cmlab.runtime.helper`): commands work the same,
netlink sockets (``rtnl``) only on this machine.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from cmlab.errors import FaultError, Unsupported

# pyroute2 and Docker's SDK cost about a second of CPU to import: they are
# imported when a namespace is first entered, not when cmlab is.
if TYPE_CHECKING:
    from docker.models.containers import Container
    from pyroute2 import IPRoute, NetNS

    from cmlab.runtime.helper import Runner

#: Longest a host command in a namespace may take, seconds.
COMMAND_TIMEOUT_S = 10


class ContainerNetns:
    """The network namespace of ``container`` (which must be running or paused).

    :param runner: runs programs on the container's host; None: this machine.
    """

    def __init__(self, container: Container, runner: "Runner | None" = None) -> None:
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise FaultError(f"{container.name} is not running: its network namespace cannot be entered")
        self.name = container.name
        self.container = container
        self.container_id = container.id
        self.pid = pid
        self.path = f"/proc/{pid}/ns/net"
        self.runner = runner

    @property
    def remote(self) -> bool:
        return self.runner is not None

    def current(self) -> bool:
        """Whether the PID still belongs to the container (not restarted since)."""
        if self.runner is not None:
            try:
                self.container.reload()
            except Exception:  # noqa: BLE001 - gone, or its host does not answer
                return False
            return self.container.attrs["State"]["Pid"] == self.pid
        try:
            with open(f"/proc/{self.pid}/cgroup") as f:
                return self.container_id in f.read()
        except OSError:
            return False

    @contextmanager
    def rtnl(self) -> Iterator[NetNS]:
        """A pyroute2 netlink socket inside the namespace.

        :raises Unsupported: the container is on another host.
        """
        if self.runner is not None:
            raise Unsupported(f"{self.name} is on another host: this step works by netlink from cmlab's own host, "
                              "which labs across hosts do not support (docs/across-hosts.md lists the faults that work there)")
        from pyroute2 import NetNS

        ns = NetNS(self.path)
        try:
            yield ns
        finally:
            ns.close()

    def run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run a host binary inside the namespace (network only).

        :raises FaultError: it failed (with ``check``), naming the command and its error.
        """
        argv = ["nsenter", f"--net={self.path}", *argv]
        proc = (self.runner(argv, stdin) if self.runner is not None else
                subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S))
        if check and proc.returncode != 0:
            raise FaultError(f"{self.name}: {' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def nft(self, script: str) -> None:
        """Apply an nftables script atomically (``nft -f -``)."""
        self.run(["nft", "-f", "-"], stdin=script)

    def interfaces(self) -> list[tuple[int, str, int]]:
        """``(index, name, host-side peer index)`` of each veth in the namespace."""
        if self.runner is not None:
            links = json.loads(self.run(["ip", "-j", "link", "show"]).stdout or "[]")
            return [(link["ifindex"], link["ifname"], link.get("link_index", 0)) for link in links if link["ifname"] != "lo"]
        out = []
        with self.rtnl() as ns:
            for link in ns.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name == "lo":
                    continue
                out.append((link["index"], name, link.get_attr("IFLA_LINK") or 0))
        return out


def local_addresses(pid: int) -> set[str]:
    """The IPv4 addresses local to the network namespace of ``pid``, read from
    its routing table's text (``/proc/<pid>/net/fib_trie``, entries marked
    ``/32 host LOCAL``). A file read: no netlink socket, no helper process,
    well under a millisecond (observers call it every 20 ms).

    :raises OSError: the process is gone.
    """
    with open(f"/proc/{pid}/net/fib_trie") as f:
        lines = f.read().splitlines()
    found = set()
    for prev, line in zip(lines, lines[1:]):
        if line.strip() == "/32 host LOCAL" and "|-- " in prev:
            found.add(prev.split("|-- ", 1)[1].strip())
    return found


def is_local(fib_trie: bytes, address: str) -> bool:
    """Whether ``address`` is marked ``/32 host LOCAL`` in the text of a
    ``/proc/<pid>/net/fib_trie``."""
    needle = f"|-- {address}\n".encode()
    at = fib_trie.find(needle)
    while at >= 0:
        if fib_trie[at + len(needle):].lstrip(b" ").startswith(b"/32 host LOCAL"):
            return True
        at = fib_trie.find(needle, at + 1)
    return False


#: setns(2) flag of a network namespace (linux/sched.h).
_CLONE_NEWNET = 0x40000000
#: rtnetlink multicast group of IPv4 address changes (linux/rtnetlink.h RTMGRP_IPV4_IFADDR).
_RTMGRP_IPV4_IFADDR = 0x10


def address_change_socket(netns_path: str) -> socket.socket:
    """A non-blocking rtnetlink socket inside the namespace at ``netns_path``,
    readable whenever an IPv4 address is added or removed there.

    A socket belongs to the namespace it was made in, so a short-lived thread
    enters the namespace (setns(2) acts on the calling thread only), makes
    it, and ends; the socket is then read from any thread.

    :raises OSError: the namespace cannot be entered (not root, gone).
    """
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                     socket.NETLINK_ROUTE)
                sock.bind((0, _RTMGRP_IPV4_IFADDR))
                made.append(sock)
            finally:
                os.close(fd)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            made.append(exc)

    worker = threading.Thread(target=make, name="netns-socket", daemon=True)
    worker.start()
    worker.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class AddressReader:
    """Tells whether addresses are local to a running container's namespace,
    and when that may have changed.

    * :meth:`read`: one ``pread`` of the namespace's ``fib_trie``, held open;
    * :attr:`changes_fd`: an rtnetlink socket in the namespace, readable when
      an IPv4 address there is added or removed (:meth:`drain` empties it);
    * :attr:`pidfd`: readable once the container's init has exited. A file or
      socket held open keeps a dead container's namespace, VIP included, so
      the caller polls this before it trusts :meth:`read`, and then closes.

    :raises FaultError: the container is not running.
    :raises OSError: its process is already gone, or its namespace cannot be entered.
    """

    def __init__(self, container: Container) -> None:
        ns = ContainerNetns(container)
        self.pid = ns.pid
        self._fib = self._pidfd = -1
        self._changes: socket.socket | None = None
        try:
            # The change socket first: a change after it exists is never missed by a read.
            self._changes = address_change_socket(ns.path)
            self._fib = os.open(f"/proc/{ns.pid}/net/fib_trie", os.O_RDONLY | os.O_CLOEXEC)
            self._pidfd = os.pidfd_open(ns.pid)
        except OSError:
            self.close()
            raise
        self._size = 16384
        if not ns.current():  # the PID was reused before the pidfd was taken
            self.close()
            raise OSError(f"{container.name}: its init process is gone")

    @property
    def pidfd(self) -> int:
        """Readable once the container's init has exited (poll it with others)."""
        return self._pidfd

    @property
    def changes_fd(self) -> int:
        """Readable when an IPv4 address of the namespace changed."""
        assert self._changes is not None
        return self._changes.fileno()

    def drain(self) -> None:
        """Read every pending change notice (their content is not needed: the
        caller reads the table again). An overrun (ENOBUFS) means changes too."""
        assert self._changes is not None
        while True:
            try:
                self._changes.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise

    def read(self, address: str) -> bool:
        """Whether ``address`` is local to the namespace (as of the last poll of :attr:`pidfd`)."""
        while True:
            text = os.pread(self._fib, self._size, 0)
            if len(text) < self._size:
                return is_local(text, address)
            self._size *= 2  # a bigger table than seen so far: read it whole

    def close(self) -> None:
        for fd in (self._fib, self._pidfd):
            if fd >= 0:
                with suppress(OSError):
                    os.close(fd)
        self._fib = self._pidfd = -1
        if self._changes is not None:
            self._changes.close()
            self._changes = None


@contextmanager
def host_rtnl() -> Iterator[IPRoute]:
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def netlink_error() -> type[Exception]:
    """pyroute2's ``NetlinkError``, for ``except netlink_error() as exc:`` in
    code that must not import pyroute2 before it uses it."""
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError
