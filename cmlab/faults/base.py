"""The fault contract.

A fault is a frozen dataclass of *concrete* parameters (node names already
resolved from targets), so that what was applied is exactly what is undone.
``apply`` puts it in effect; ``undo`` removes it and is idempotent; ``observe``
says whether it is in effect now, read from the kernel or Docker, not from
memory. A fault whose effect is an instant (a kill, a restart, a gratuitous
ARP) is not ``reversible``: it is logged but never listed as active.
"""

from __future__ import annotations

import hashlib
import os
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from cmlab.engines.base import Engine
from cmlab.errors import FaultError, LabError
from cmlab.runtime.netns import ContainerNetns
from cmlab.topology.plan import LabPlan

if TYPE_CHECKING:  # Docker's SDK is imported when a fault runs, not when its module is read
    from docker.models.containers import Container

    from cmlab.runtime.docker import DockerRuntime

#: Every fault class, by kind, for reading records back.
FAULTS: dict[str, type["Fault"]] = {}


@dataclass
class FaultContext:
    """What a fault acts on: the lab's plan, its Docker objects, its engine."""

    plan: LabPlan
    runtime: DockerRuntime
    engine: Engine
    #: Entered namespaces by node, reused while their container keeps its PID.
    _netns: dict[str, ContainerNetns] = field(default_factory=dict, repr=False)

    def container(self, node: str) -> Container:
        """The container of a node, or the router's when ``node`` is the router's name."""
        if node == self.plan.router:
            host, name = self.plan.router_host, self.plan.router
        else:
            host, name = self.plan.node(node).host, self.plan.node(node).container
        try:
            found = self.runtime.named(host, name)
        except LabError as exc:  # its host does not answer: as gone, for the faults
            raise FaultError(str(exc)) from None
        if found is None:
            raise FaultError(f"{node}: container {name} does not exist" + (f" on host {host}" if host else ""))
        return found

    def host_of(self, node: str) -> str | None:
        """The host of a node or of the router (None: this machine's engine)."""
        return self.plan.router_host if node == self.plan.router else self.plan.node(node).host

    def netns(self, node: str) -> ContainerNetns:
        cached = self._netns.get(node)
        if cached is None or not cached.current():
            runner = self.runtime.runner(self.plan, self.host_of(node))
            cached = self._netns[node] = ContainerNetns(self.container(node), runner)
        return cached

    def signal(self, node: str, pids: list[int], sig: int) -> None:
        """Send ``sig`` to host PIDs of ``node``'s container (gone ones skipped).

        :raises FaultError: not allowed (not root), or the host's helper failed.
        """
        runner = self.runtime.runner(self.plan, self.host_of(node))
        if runner is None:
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
                except PermissionError:
                    raise FaultError("signalling a container's processes from the host needs root") from None
            return
        if pids:
            # kill(1) goes on past a gone PID (and says so): only a refusal matters.
            proc = runner(["kill", f"-{int(sig)}", *map(str, pids)])
            if proc.returncode != 0 and "No such process" not in proc.stderr:
                raise FaultError(f"{node}: kill -{int(sig)} failed on its host: {proc.stderr.strip()}")

    def address(self, node: str) -> str:
        return str(self.plan.node(node).address)


class Fault(ABC):
    """Base of every fault. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    #: False for faults whose effect is an instant (kill, restart, ARP).
    reversible: ClassVar[bool] = True
    #: Host capabilities needed (names of :func:`cmlab.runtime.capabilities.capabilities`).
    requires: ClassVar[frozenset[str]] = frozenset({"root"})

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            FAULTS[cls.kind] = cls

    def params(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @property
    def key(self) -> str:
        """Stable id of the fault: the same fault applied twice has the same key."""
        digest = hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.kind.replace('-', '_')}_{digest}"

    @abstractmethod
    def describe(self) -> str:
        """One line for people: what is cut, lost, frozen."""

    @abstractmethod
    def apply(self, ctx: FaultContext) -> None:
        """Put the fault in effect. Raises :class:`FaultError` on failure."""

    def undo(self, ctx: FaultContext) -> None:
        """Remove the fault; harmless when it is not in effect."""

    def observe(self, ctx: FaultContext) -> bool | None:
        """Whether the fault is in effect now (None: cannot tell)."""
        return None

    def to_record(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "params": self.params(), "describe": self.describe()}

    @staticmethod
    def from_record(record: dict[str, Any]) -> "Fault":
        cls = FAULTS[record["kind"]]
        return cls(**{k: _tuplify(v) for k, v in record["params"].items()})  # type: ignore[call-arg]


def _tuplify(value: Any) -> Any:
    """JSON gives lists back; the frozen dataclasses hold tuples."""
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value
