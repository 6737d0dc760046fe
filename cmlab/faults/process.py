"""Process and container faults: kill, freeze (SIGSTOP, CM's "phony dead",
state T), pause, stop, restart.

Processes are found from the host (``docker top``, host PIDs) and signalled
from the host, so the images need nothing. A process is named by its duty in
the engine ("database", "agent", "quorum", "vip": see
:attr:`cmlab.engines.base.Engine.processes`) or by its own name.
"""

from __future__ import annotations

import signal as signals
from dataclasses import dataclass
from typing import ClassVar


from cmlab.errors import FaultError
from cmlab.faults.base import Fault, FaultContext
from cmlab.vocabulary import current


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    name: str


def processes(ctx: FaultContext, node: str) -> list[Proc]:
    """The node's processes, with host PIDs."""
    container = ctx.container(node)
    try:
        top = container.top(ps_args="-eo pid,ppid,stat,comm")
    except _api_error() as exc:
        raise FaultError(f"{node}: cannot list processes: {exc.explanation}") from None
    titles = top["Titles"]
    out = []
    for row in top.get("Processes") or []:
        r = dict(zip(titles, row))
        out.append(Proc(int(r["PID"]), int(r["PPID"]), r["STAT"], r["COMMAND"]))
    return out


def process_name(ctx: FaultContext, process: str) -> str:
    """The process name for a duty or a name; raises when the engine has no such process."""
    known = ctx.engine.processes
    process = current(process)
    if process in known:
        return known[process]
    if process in known.values():
        return process
    raise FaultError(f"engine {ctx.engine.name} has no process '{process}' "
                     f"(duties: {', '.join(f'{k}={v}' for k, v in known.items())})")


@dataclass(frozen=True)
class Kill(Fault):
    """Send ``signal`` to the named process on each node: to its top process
    (the postmaster, not its backends) unless ``every`` is set."""

    kind: ClassVar[str] = "kill"
    reversible: ClassVar[bool] = False
    nodes: tuple[str, ...]
    process: str
    signal: str = "KILL"
    every: bool = False

    def describe(self) -> str:
        return f"kill -{self.signal} {self.process} on {','.join(self.nodes)}"

    def apply(self, ctx: FaultContext) -> None:
        name = process_name(ctx, self.process)
        sig = signals.Signals[f"SIG{self.signal.upper().removeprefix('SIG')}"]
        for node in self.nodes:
            procs = [p for p in processes(ctx, node) if p.name == name]
            pids = {p.pid for p in procs}
            targets = [p.pid for p in procs if self.every or p.ppid not in pids]
            if not targets:
                raise FaultError(f"{node}: no process '{name}' is running")
            ctx.signal(node, targets, sig)


@dataclass(frozen=True)
class Freeze(Fault):
    """SIGSTOP every process of that name on the nodes (state T: CM's "phony
    dead"); undo sends SIGCONT."""

    kind: ClassVar[str] = "freeze"
    nodes: tuple[str, ...]
    process: str

    def describe(self) -> str:
        return f"freeze {self.process} on {','.join(self.nodes)}"

    def _pids(self, ctx: FaultContext, node: str) -> list[int]:
        name = process_name(ctx, self.process)
        return [p.pid for p in processes(ctx, node) if p.name == name]

    def apply(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            pids = self._pids(ctx, node)
            if not pids:
                raise FaultError(f"{node}: no process '{process_name(ctx, self.process)}' is running")
            ctx.signal(node, pids, signals.SIGSTOP)

    def undo(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            try:
                ctx.signal(node, self._pids(ctx, node), signals.SIGCONT)
            except FaultError:
                continue

    def observe(self, ctx: FaultContext) -> bool | None:
        name = process_name(ctx, self.process)
        try:
            return all(any(p.state.startswith("T") for p in processes(ctx, n) if p.name == name) for n in self.nodes)
        except FaultError:
            return False


@dataclass(frozen=True)
class Pause(Fault):
    """``docker pause`` (cgroup freezer: every process of the node stops)."""

    kind: ClassVar[str] = "pause"
    requires: ClassVar[frozenset[str]] = frozenset()
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return f"pause {','.join(self.nodes)}"

    def apply(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            c = ctx.container(node)
            c.reload()
            if c.status != "paused":
                c.pause()

    def undo(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            try:
                c = ctx.container(node)
                c.reload()
                if c.status == "paused":
                    c.unpause()
            except FaultError:
                continue

    def observe(self, ctx: FaultContext) -> bool | None:
        return all(_status(ctx, n) == "paused" for n in self.nodes)


@dataclass(frozen=True)
class Stop(Fault):
    """``docker stop`` (SIGTERM, then SIGKILL after ``timeout_s`` seconds);
    undo starts the container again."""

    kind: ClassVar[str] = "stop"
    requires: ClassVar[frozenset[str]] = frozenset()
    nodes: tuple[str, ...]
    timeout_s: int = 10

    def describe(self) -> str:
        return f"stop {','.join(self.nodes)}"

    def apply(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            ctx.container(node).stop(timeout=self.timeout_s)

    def undo(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            try:
                c = ctx.container(node)
                c.reload()
                if c.status != "running":
                    c.start()
            except FaultError:
                continue

    def observe(self, ctx: FaultContext) -> bool | None:
        return all(_status(ctx, n) in ("exited", "created") for n in self.nodes)


@dataclass(frozen=True)
class Restart(Fault):
    """``docker restart``: an instant stop and start."""

    kind: ClassVar[str] = "restart"
    reversible: ClassVar[bool] = False
    requires: ClassVar[frozenset[str]] = frozenset()
    nodes: tuple[str, ...]
    timeout_s: int = 10

    def describe(self) -> str:
        return f"restart {','.join(self.nodes)}"

    def apply(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            ctx.container(node).restart(timeout=self.timeout_s)


def _status(ctx: FaultContext, node: str) -> str:
    try:
        c = ctx.container(node)
    except FaultError:
        return "gone"
    c.reload()
    return str(c.status)


@dataclass(frozen=True)
class Crash(Stop):
    """``docker kill``: every process of the node dies at once and its network
    namespace (and any VIP in it) goes with it, as when a host loses power.
    Undo starts the container again (the node rejoins)."""

    kind: ClassVar[str] = "crash"

    def describe(self) -> str:
        return f"crash {','.join(self.nodes)} (docker kill)"

    def apply(self, ctx: FaultContext) -> None:
        for node in self.nodes:
            c = ctx.container(node)
            c.reload()
            if c.status == "running":
                c.kill()


def _api_error() -> type[Exception]:
    from docker.errors import APIError  # imported when a process fault runs

    return APIError
