"""The nemesis of one lab: builds faults from targets, applies, records,
lists and heals them.

* Targets are resolved once, when a fault is built, so the record holds the
  concrete nodes and undo is exact.
* ``apply`` checks the host can do the fault first, and undoes whatever was
  done if a step fails: a fault is applied whole or not at all.
* The record of active faults lives in the lab's state directory (several
  CLI calls share it, under a file lock); the event log gets the monotonic
  times of every apply and undo.
* ``heal`` undoes every recorded fault, then sweeps every lab namespace for
  cmlab's own table, qdiscs and downed links, so nothing is left even if a
  record was lost. It never touches what cmlab did not create.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from cmlab.engines.base import ClusterState
from cmlab.engines.cluster import Cluster, attach
from cmlab.errors import FaultError
from cmlab.events import EventLog
from cmlab.faults import grudge as grudges
from cmlab.faults import kinds
from cmlab.faults import targets
from cmlab.faults.base import Fault, FaultContext
from cmlab.runtime.capabilities import require
from cmlab.faults.network import (AzPartition, Bandwidth, Delay, GatewayLoss, LinkDown, Loss, Partition, delete_table,
                                  host_peers, remove_host_qdiscs, remove_qdiscs, set_links)
from cmlab.faults.disk import DiskDetach, DiskFill, DiskReadOnly
from cmlab.faults.process import Crash, Freeze, Kill, Pause, Restart, Stop
from cmlab.faults.vip import VipDuplicate, VipGarp, VipRemove, holds, set_address, vip_of
from cmlab.state import lab_state_dir

if TYPE_CHECKING:
    from cmlab.engines.base import Engine
    from cmlab.runtime.docker import DockerRuntime
    from cmlab.topology.plan import LabPlan


@dataclass(frozen=True)
class Applied:
    """A fault put in effect.

    :param t_call: monotonic time the call began, seconds.
    :param t_effect: monotonic time the fault was in effect (the call returned), seconds.
    """

    fault: Fault
    t_call: float
    t_effect: float


class Nemesis:
    """Faults of one lab (``Lab.nemesis()`` gives it).

    :param plan: the lab's plan; :param runtime: its Docker objects; :param engine: its engine.
    :param seed: seed of the random choices (``one``, ``minority``, shapes),
        for a reproducible run.
    """

    def __init__(self, plan: "LabPlan", runtime: "DockerRuntime", engine: "Engine", seed: int | str | None = None) -> None:
        self.plan, self.runtime, self.engine = plan, runtime, engine
        self.ctx = FaultContext(plan, runtime, engine)
        self.rng = random.Random(seed)
        self.events = EventLog.of_lab(plan.name)
        state = lab_state_dir(plan.name)
        self._records = state / "faults.json"
        self._lock = FileLock(str(state / "faults.lock"), timeout=60)

    # ---- targets ----------------------------------------------------------------------

    def resolve(self, spec: str) -> list[str]:
        """Node names for a target spec (see :mod:`cmlab.faults.targets`)."""
        # Bound only when a live reading is needed: a fixed target reads nothing.
        def cluster() -> Cluster:
            return attach(self.engine, self.plan, self.runtime.access(self.plan))

        state: ClusterState | None = cluster().snapshot() if targets.needs_live_state(spec) else None
        return targets.resolve(spec, self.plan, state, self.rng, lambda: cluster().quorum_leader(),
                               lambda node: cluster().upstream(node))

    def _nodes(self, spec: str) -> tuple[str, ...]:
        return tuple(self.resolve(spec))

    # ---- builders (targets -> concrete faults) ---------------------------------------------

    def isolate(self, target: str, clients: bool = False) -> Partition:
        """Cut each target node from every other node (clients too if asked)."""
        nodes = self.resolve(target)
        g = grudges.isolate(nodes, [n.name for n in self.plan.nodes])
        return _partition(g, nodes if clients else ())

    def isolate_host(self, host: str, clients: bool = True) -> Partition:
        """Cut every node of a host of a lab across hosts from the nodes of the
        other hosts, and from cmlab's clients too unless ``clients`` is False:
        the host's network is gone. ``host``: a host's name, or
        ``primary-host``, the host of the primary now."""
        names = [h.name for h in self.plan.hosts]
        if not names:
            raise FaultError(f"lab {self.plan.name} runs on one host: isolate-host needs a lab across hosts")
        if host == "primary-host":
            host = self.plan.node(self._one("primary")).host or ""
        if host not in names:
            raise FaultError(f"unknown host '{host}' (hosts: {', '.join(names)}, or primary-host)")
        on = [n.name for n in self.plan.nodes if n.host == host]
        others = [n.name for n in self.plan.nodes if n.host != host]
        if not on or not others:
            raise FaultError(f"host {host} holds {'no' if not on else 'every'} node: cutting it off cuts nothing")
        return _partition(grudges.cut(on, others, False), on if clients else ())

    def cut(self, a: str, b: str, one_way: bool = False) -> Partition:
        """Cut the nodes of ``a`` from those of ``b`` (from ``a`` to ``b`` only if one-way)."""
        try:
            return _partition(grudges.cut(self.resolve(a), self.resolve(b), one_way))
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    def shape(self, name: str) -> Partition:
        """Jepsen's shapes: halves, bridge, majorities-ring."""
        if name not in grudges.SHAPES:
            raise FaultError(f"unknown partition shape '{name}' (shapes: {', '.join(grudges.SHAPES)})")
        try:
            return _partition(grudges.SHAPES[name]([n.name for n in self.plan.nodes], self.rng))
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    def split_azs(self, a: list[str], b: list[str] | None = None, one_way: bool = False) -> AzPartition:
        """Cut AZs ``a`` from AZs ``b`` (default: every other AZ) at the router.
        An AZ is named, or ``primary-az``: the AZ of the primary now."""
        names = [az.name for az in self.plan.azs]
        a = [self._az(az) for az in a]
        b = [self._az(az) for az in b] if b else None
        for az in a + (b or []):
            if az not in names:
                raise FaultError(f"unknown AZ '{az}' (AZs: {', '.join(names)}, or primary-az)")
        b = b or [n for n in names if n not in a]
        if not b or set(a) & set(b):
            raise FaultError("an AZ partition needs two disjoint, non-empty sets of AZs")
        return AzPartition(tuple(a), tuple(b), one_way)

    def _az(self, word: str) -> str:
        if word != "primary-az":
            return word
        return self.plan.node(self._one("primary")).az

    def loss(self, target: str, percent: float, direction: str = "egress", peers: str | None = None) -> Loss:
        return Loss(self._nodes(target), percent, direction, self._nodes(peers) if peers else ())

    def bandwidth(self, target: str, rate: str, direction: str = "egress") -> Bandwidth:
        """``rate`` in tc units (``1mbit``); ``direction``: egress, ingress or both."""
        return Bandwidth(self._nodes(target), rate, direction=direction)

    def delay(self, target: str, ms: float, jitter_ms: float = 0) -> Delay:
        return Delay(self._nodes(target), ms, jitter_ms)

    def gateway_loss(self, target: str) -> GatewayLoss:
        """The nodes cut from the router's own addresses (the gateway), the router still forwarding."""
        return GatewayLoss(self._nodes(target))

    def link_down(self, target: str) -> LinkDown:
        return LinkDown(self._nodes(target))

    def kill(self, target: str, process: str, signal: str = "KILL", every: bool = False) -> Kill:
        return Kill(self._nodes(target), process, signal, every)

    def freeze(self, target: str, process: str) -> Freeze:
        return Freeze(self._nodes(target), process)

    def crash(self, target: str) -> Crash:
        return Crash(self._nodes(target))

    def pause(self, target: str) -> Pause:
        return Pause(self._nodes(target))

    def stop(self, target: str) -> Stop:
        return Stop(self._nodes(target))

    def restart(self, target: str) -> Restart:
        return Restart(self._nodes(target))

    def disk_readonly(self, disk: str) -> DiskReadOnly:
        return DiskReadOnly(self._disk(disk))

    def disk_detach(self, disk: str) -> DiskDetach:
        return DiskDetach(self._disk(disk))

    def disk_fill(self, disk: str, percent: float) -> DiskFill:
        return DiskFill(self._disk(disk), percent)

    def _disk(self, name: str) -> str:
        try:
            return self.plan.disk(name).name
        except KeyError as exc:
            raise FaultError(str(exc.args[0])) from None

    def _vip_name(self, vip: str | None) -> str:
        """The VIP named, else the lab's only one, else the one in use: the
        VIP of the primary's AZ (a lab with a VIP per AZ)."""
        if vip:
            return vip_of(self.ctx, vip).name
        if len(self.plan.vips) == 1:
            return self.plan.vips[0].name
        if not self.plan.vips:
            raise FaultError(f"lab {self.plan.name} has no VIP")
        in_use = self.plan.vip_of_az(self.plan.node(self._one("primary")).az)
        if in_use is None:
            raise FaultError(f"the primary's AZ has no VIP: name one (VIPs: {', '.join(v.name for v in self.plan.vips)})")
        return in_use.name

    def vip_remove(self, vip: str | None = None) -> VipRemove:
        """Take the VIP from whichever nodes hold it now."""
        name = self._vip_name(vip)
        holders = self.runtime.vip_holders(self.plan)[name]
        if not holders:
            raise FaultError(f"no node holds VIP {name} now")
        return VipRemove(name, tuple(holders))

    def vip_duplicate(self, node: str, vip: str | None = None) -> VipDuplicate:
        return VipDuplicate(self._vip_name(vip), self._one(node))

    def vip_garp(self, node: str, vip: str | None = None) -> VipGarp:
        return VipGarp(self._vip_name(vip), self._one(node))

    def _one(self, target: str) -> str:
        nodes = self.resolve(target)
        if len(nodes) != 1:
            raise FaultError(f"'{target}' designates {len(nodes)} nodes; this fault takes one")
        return nodes[0]

    def build(self, kind: str, **arguments: Any) -> Fault:
        """The fault of ``kind`` (a name of :data:`cmlab.faults.kinds.KINDS`) from
        its arguments (the builder's keywords: :meth:`FaultKind.check` gives them).

        :raises ValueError: no such kind. :raises FaultError: the arguments name nothing here.
        """
        return getattr(self, kinds.get(kind).builder)(**arguments)

    # ---- applying ------------------------------------------------------------------------

    def apply(self, fault: Fault) -> Applied:
        """Put ``fault`` in effect, whole or not at all, and record it.

        :raises Unsupported: the host cannot do it (nothing applied).
        :raises FaultError: a step failed (what was done is undone).
        """
        # Across hosts the kernel features are the nodes' hosts' (their helpers'
        # commands say Unsupported, naming the host); this machine needs root only.
        require(fault.requires if not self.plan.hosts else fault.requires & {"root"}, fault.kind)
        t_call = time.monotonic()
        try:
            fault.apply(self.ctx)
        except BaseException:
            with suppress(Exception):
                fault.undo(self.ctx)
            raise
        t_effect = time.monotonic()
        self.events.append("fault-applied", t=t_effect, t_call=t_call, key=fault.key, kind=fault.kind,
                           params=fault.params(), describe=fault.describe())
        if fault.reversible:
            with self._lock:
                records = self._read()
                records[fault.key] = fault.to_record()
                self._write(records)
        return Applied(fault, t_call, t_effect)

    def undo(self, key: str) -> Fault:
        """Undo one active fault by key.

        :raises FaultError: no active fault has that key.
        """
        with self._lock:
            records = self._read()
            if key not in records:
                raise FaultError(f"no active fault '{key}' (active: {', '.join(records) or 'none'})")
            fault = Fault.from_record(records[key])
            t_call = time.monotonic()
            fault.undo(self.ctx)
            del records[key]
            self._write(records)
        self.events.append("fault-healed", t_call=t_call, key=key, kind=fault.kind, describe=fault.describe())
        return fault

    def heal(self) -> list[Fault]:
        """Undo every active fault (newest first), then sweep the lab for
        anything of cmlab's left in its namespaces. Returns what was undone.
        The event ``healed`` carries ``t`` when the undos were done (heal in
        effect) and ``t_swept`` when the sweep was."""
        t_call = time.monotonic()
        with self._lock:
            records = self._read()
            undone = []
            for key in reversed(list(records)):
                fault = Fault.from_record(records[key])
                with suppress(FaultError):
                    fault.undo(self.ctx)
                undone.append(fault)
            t_effect = time.monotonic()
            self._write({})
            self.sweep()
        self.events.append("healed", t=t_effect, t_call=t_call, t_swept=time.monotonic(), keys=[f.key for f in undone])
        return undone

    def sweep(self) -> None:
        """Remove cmlab's nftables table, qdiscs and downed links from every
        running container of the lab (in parallel); needs root (it does
        nothing without)."""
        if os.geteuid() != 0:
            return

        def clean(node: str) -> None:
            try:
                ns = self.ctx.netns(node)
            except FaultError:
                return  # not running: nothing of ours in it
            for step in (lambda: delete_table(ns), lambda: remove_qdiscs(ns),
                         lambda: remove_host_qdiscs(host_peers(ns)),
                         lambda: set_links(host_peers(ns), "up")):
                with suppress(FaultError):
                    step()

        names = [n.name for n in self.plan.nodes] + ([self.plan.router] if self.plan.router else [])
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(clean, names))

    def active(self) -> list[tuple[dict[str, Any], bool | None]]:
        """``(record, observed in effect now)`` of every active fault."""
        with self._lock:
            records = self._read()
        out = []
        for record in records.values():
            try:
                seen = Fault.from_record(record).observe(self.ctx)
            except FaultError:
                seen = False
            out.append((record, seen))
        return out

    def flap_vip(self, vip: str | None, node: str, period_s: float, duration_s: float) -> int:
        """Toggle the VIP on ``node`` every ``period_s`` seconds for ``duration_s``
        seconds, then leave it as it was. Returns the number of toggles.
        Blocks for ``duration_s`` seconds (:meth:`start_vip_flap` does not)."""
        flap = self.start_vip_flap(vip, node, period_s, duration_s)
        return flap.wait(duration_s + 10 * period_s + 10)

    def start_vip_flap(self, vip: str | None, node: str, period_s: float, duration_s: float) -> "VipFlap":
        """VIP churn in the background (a thread of this process): toggle the
        VIP on ``node`` every ``period_s`` seconds for ``duration_s`` seconds
        (or until :meth:`VipFlap.stop`), then leave it as it was. The event log
        gets fault-applied now and fault-healed when it ends.

        :raises FaultError: an unknown VIP or node, or the host cannot set addresses.
        """
        name = self._vip_name(vip)
        target = self._one(node)
        v = vip_of(self.ctx, name)
        require(VipDuplicate.requires, "vip-flap")
        had = holds(self.ctx, target, v)
        key = f"vip_flap_{name}_{target}"
        self.events.append("fault-applied", key=key, kind="vip-flap",
                           params={"vip": name, "node": target, "period_s": period_s, "duration_s": duration_s})

        def toggle(present: bool) -> None:
            set_address(self.ctx, target, v, present)

        def done(toggles: int) -> None:
            set_address(self.ctx, target, v, had)
            self.events.append("fault-healed", key=key, kind="vip-flap", toggles=toggles)

        return VipFlap(had, period_s, duration_s, toggle, done)

    # ---- the record --------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self._records.exists():
            return {}
        return json.loads(self._records.read_text() or "{}")

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        tmp = self._records.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        tmp.replace(self._records)


def _partition(g: grudges.Grudge, clients: list[str] | tuple[str, ...] = ()) -> Partition:
    """A partition of grudge ``g``; ``clients``: the nodes that also drop cmlab's clients."""
    if not g:
        raise FaultError("the partition cuts nothing")
    return Partition(tuple((n, tuple(sorted(d))) for n, d in sorted(g.items())), tuple(sorted(clients)))


class VipFlap:
    """A VIP flapping in a background thread (:meth:`Nemesis.start_vip_flap`);
    a context manager that stops it on exit.

    :param toggle: sets the address present (True) or absent.
    :param done: puts it back as it was and records the end; called once.
    """

    def __init__(self, had: bool, period_s: float, duration_s: float,
                 toggle: Callable[[bool], None], done: Callable[[int], None]) -> None:
        self.toggles = 0
        #: How long each toggle took, seconds: the flap's real period is ``period_s`` plus this.
        self.toggle_s: list[float] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._had, self._period_s, self._deadline = had, period_s, time.monotonic() + duration_s
        self._toggle, self._done = toggle, done
        self._thread = threading.Thread(target=self._run, name="vip-flap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        present = self._had
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                present = not present
                t0 = time.monotonic()
                self._toggle(present)
                self.toggle_s.append(time.monotonic() - t0)
                self.toggles += 1
                self._stop.wait(max(0.0, min(self._period_s, self._deadline - time.monotonic())))
        except Exception as exc:  # noqa: BLE001 - kept for wait() to raise in the caller
            self.error = exc
        finally:
            try:
                self._done(self.toggles)
            except Exception as exc:  # noqa: BLE001
                self.error = self.error or exc

    def stop(self, timeout_s: float = 10.0) -> int:
        """End the flapping now, the VIP as it was; returns the number of toggles."""
        self._stop.set()
        return self.wait(timeout_s)

    def wait(self, timeout_s: float) -> int:
        """Wait (at most ``timeout_s`` seconds) for the flapping to end; returns the toggles.

        :raises FaultError: it did not end in time, or a toggle failed (the cause).
        """
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise FaultError(f"the VIP flap did not end within {timeout_s} s")
        if self.error is not None:
            raise FaultError(f"the VIP flap failed: {self.error}") from self.error
        return self.toggles

    def __enter__(self) -> "VipFlap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
