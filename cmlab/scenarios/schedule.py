"""The interpreter of a scenario's steps: one loop for every scenario.

:class:`ScheduleRunner` runs the concrete steps of one trial
(:mod:`cmlab.scenarios.compose`) on a lab and returns the step timeline:
for each step its origin in the file, its arguments, what it resolved to
(the fault's concrete nodes, the switchover's candidate), when it began and
ended (monotonic seconds) and its outcome. The event log gets a ``step``
event for each, so a history shows the schedule beside the probes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cmlab.errors import CmlabError, WaitTimeout
from cmlab.events import EventLog
from cmlab.history import is_client_writer
from cmlab.progress import RunWatch
from cmlab.faults.nemesis import Applied, Nemesis, VipFlap
from cmlab.scenarios.compose import Planned
from cmlab.topology.schema import Role
from cmlab.wait import wait_for

if TYPE_CHECKING:
    from cmlab.lab import Lab
    from cmlab.probes.probeset import ProbeSet

#: Writes through a VIP must flow for this long, seconds, to count as resumed.
RECOVERED_FLOW_S = 0.5


def writes_flowing(probes: "ProbeSet", since: float) -> bool:
    """Writes of some client (through a VIP, or seeking the primary in a lab
    without VIPs) have been acknowledged for :data:`RECOVERED_FLOW_S` seconds
    since ``since`` (monotonic seconds), none of them failing."""
    now = time.monotonic()
    for w in probes.writers:
        if not is_client_writer(w.name):
            continue
        recent = [x for x in w.writes[-200:] if x.sent >= max(since, now - RECOVERED_FLOW_S)]
        acked_after = any(x.acked is not None and x.acked > since for x in recent)
        if acked_after and recent and all(x.acked is not None for x in recent) and now - since >= RECOVERED_FLOW_S:
            return True
    return False


def _quorum_count(lab: "Lab", az: str) -> int:
    return sum(1 for n in lab.plan.nodes if n.az == az and Role.quorum in n.roles)


def az_of_word(lab: "Lab", word: str) -> str:
    """An AZ's name from a ``primary-in`` word: a name, ``quorum-majority``
    (most quorum members; ties: the AZ of highest priority) or ``quorum-minority``.

    :raises CmlabError: an unknown AZ.
    """
    names = [a.name for a in lab.plan.azs]
    if word == "quorum-majority":
        return max(names, key=lambda az: (_quorum_count(lab, az), -lab.plan.az(az).priority))
    if word == "quorum-minority":
        return min(names, key=lambda az: (_quorum_count(lab, az), lab.plan.az(az).priority))
    if word not in names:
        raise CmlabError(f"primary-in: unknown AZ '{word}' (AZs: {', '.join(names)}, quorum-majority, quorum-minority)")
    return word


class ScheduleRunner:
    """Runs one trial's steps on a lab.

    :param probes: the trial's probes (None during setup: ``writes-resumed`` then cannot be waited for).
    :param time_limit_s: no step starts this many seconds after the first; None: no limit.
    """

    def __init__(self, lab: "Lab", nemesis: Nemesis, events: EventLog, probes: "ProbeSet | None" = None,
                 old_primary: str | None = None, time_limit_s: float | None = None, write_interval_s: float = 0.02,
                 watch: RunWatch | None = None):
        self.lab, self.nemesis, self.events, self.probes = lab, nemesis, events, probes
        self.watch = watch or RunWatch()
        self.old_primary = old_primary
        self.time_limit_s = time_limit_s
        self.write_interval_s = write_interval_s
        self.last_fault: Applied | None = None
        #: When the last fault (or VIP flap) took effect, monotonic seconds; waits' at-least counts from it.
        self.t_effect: float | None = None
        self.faults_applied = 0
        #: VIP churn running in the background (stopped by a heal or at the end).
        self.flaps: list[VipFlap] = []
        self._vip_holders_at_start = lab.runtime.vip_holders(lab.plan) if lab.plan.vips else {}

    def run(self, steps: list[Planned]) -> list[dict[str, Any]]:
        """Run ``steps`` in order; returns the step timeline (see the module doc).

        :raises CmlabError: a step failed (a fault could not be applied, a
            switchover was refused, a ``wait`` with ``on-timeout: fail`` timed out).
        """
        timeline: list[dict[str, Any]] = []
        t_first = time.monotonic()
        try:
            self._run(steps, timeline, t_first)
        finally:
            self._stop_flaps()
        return timeline

    def _run(self, steps: list[Planned], timeline: list[dict[str, Any]], t_first: float) -> None:
        for step in steps:
            record: dict[str, Any] = {**step.to_json()}
            if self.time_limit_s is not None and time.monotonic() - t_first > self.time_limit_s:
                record.update(outcome="skipped: past the time limit", t_start=None, t_end=None)
                timeline.append(record)
                continue
            record["t_start"] = time.monotonic()
            self.watch.start_step(step.describe(), step.length_s())
            try:
                record.update(self._do(step, record["t_start"]))
            except CmlabError as exc:
                record["outcome"] = f"failed: {exc}"
                raise
            finally:  # a failed step is recorded too
                record.setdefault("outcome", "failed")
                record["t_end"] = time.monotonic()
                timeline.append(record)
                self.events.append("step", t=record["t_start"], **_event_fields(record))

    def _stop_flaps(self) -> list[int]:
        toggles = [flap.stop() for flap in self.flaps]
        self.flaps = []
        return toggles

    # ---- the verbs ---------------------------------------------------------------------------

    def _do(self, step: Planned, t_start: float) -> dict[str, Any]:
        return self.RUNS[step.verb](self, step.args, t_start)

    def _fault(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        kwargs = {k: v for k, v in args.items() if k != "kind"}
        fault = self.nemesis.build(args["kind"], **kwargs)
        self.last_fault = self.nemesis.apply(fault)
        self.t_effect = self.last_fault.t_effect
        self.faults_applied += 1
        return {"outcome": "applied", "fault": fault.to_record(), "t_effect": self.last_fault.t_effect}

    def _vip_flap(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        flap = self.nemesis.start_vip_flap(args["vip"], args["node"], args["period_s"], args["duration_s"])
        self.flaps.append(flap)
        self.t_effect = time.monotonic()
        self.faults_applied += 1
        return {"outcome": "started", "t_effect": self.t_effect}

    def _heal(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        toggles = self._stop_flaps()
        undone = self.nemesis.heal()
        return {"outcome": "healed", "keys": [f.key for f in undone], **({"vip_flap_toggles": toggles} if toggles else {})}

    def _sleep(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        time.sleep(args["seconds"])  # the scenario's own pause, bounded by its value
        return {"outcome": "slept"}

    def _switchover(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        status = self.lab.wait_ready(self.lab.timing.start_s)
        databases = {n.name for n in self.lab.plan.nodes_with(Role.database)}
        candidates = [n for n in self.nemesis.resolve(args["target"]) if n in databases and n != status.primary]
        if not candidates:
            raise CmlabError(f"switchover: '{args['target']}' designates no database node other than the primary "
                             f"({status.primary})")
        self.lab.switchover(candidates[0])
        return {"outcome": "switched", "candidate": candidates[0], "from": status.primary}

    def _primary_in(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        want = az_of_word(self.lab, args["az"])
        primary = self.lab.wait_ready(self.lab.timing.start_s).primary
        assert primary is not None
        if self.lab.plan.node(primary).az == want:
            return {"outcome": "already there", "az": want, "primary": primary}
        candidate = next(n.name for n in self.lab.plan.nodes if n.az == want and Role.database in n.roles)
        self.lab.switchover(candidate)
        return {"outcome": "switched", "az": want, "candidate": candidate, "from": primary}

    def _wait(self, args: dict[str, Any], t_start: float) -> dict[str, Any]:
        condition, poll_s = self._condition(args["until"])
        since = self.t_effect if self.t_effect is not None else t_start
        try:
            wait_for(lambda: condition(since) and time.monotonic() - since >= args["at_least_s"], bool,
                     args["deadline_s"], poll_s, f"{args['until']} (at least {args['at_least_s']} s)")
        except WaitTimeout as exc:
            if args["on_timeout"] == "fail":
                raise CmlabError(f"wait: {exc}") from None
            return {"outcome": "timeout"}  # measured as it is: the metrics say what happened
        return {"outcome": "met"}

    #: How each concrete verb runs (every verb a step emits: :attr:`cmlab.scenarios.schema._Step.emits`).
    RUNS: dict[str, Callable[["ScheduleRunner", dict[str, Any], float], dict[str, Any]]] = {
        "fault": _fault, "vip-flap": _vip_flap, "heal": _heal, "sleep": _sleep, "switchover": _switchover,
        "primary-in": _primary_in, "wait": _wait,
    }

    def _condition(self, until: str) -> tuple[Callable[[float], bool], float]:
        """The predicate of a ``wait`` (given the time it counts from) and its poll period, seconds."""
        lab, poll_s = self.lab, self.lab.timing.poll_s
        if until == "writes-resumed":
            probes = self.probes
            if probes is None:
                raise CmlabError("wait: writes-resumed needs the probes (not in setup)")
            return (lambda since: writes_flowing(probes, since)), self.write_interval_s * 5
        if until == "primary-changed":
            def changed(_: float) -> bool:
                primary = lab.cluster.snapshot().primary
                return primary is not None and primary != self.old_primary
            return changed, poll_s
        if until == "vip-moved":
            def moved(_: float) -> bool:
                now = lab.runtime.vip_holders(lab.plan)
                return any(len(h) == 1 and h != self._vip_holders_at_start.get(v) for v, h in now.items())
            return moved, poll_s
        if until == "fault-in-effect":
            def in_effect(_: float) -> bool:
                return self.last_fault is not None and self.last_fault.fault.observe(self.nemesis.ctx) is True
            return in_effect, poll_s
        if until == "ready":
            return (lambda _: lab.status().ready), poll_s
        raise CmlabError(f"wait: unknown condition '{until}'")


def _event_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {"origin": record["origin"], "verb": record["verb"], "outcome": record["outcome"],
            "t_end": record.get("t_end"), **({"key": record["fault"]["key"]} if "fault" in record else {})}
