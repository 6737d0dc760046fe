"""Failover scenarios: a fault, how long it may take the cluster to recover,
and what the engine promises.

Bounds are derived from the engine's :class:`~cmlab.engines.base.Timing`, so
the same scenario holds for any engine. Where a manager legitimately cannot
promise something in a scenario, ``notes`` says why, the promise is None,
and only what it does promise is asserted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cmlab.engines.base import Timing
from cmlab.errors import CmlabError
from cmlab.faults.base import Fault

if TYPE_CHECKING:
    from cmlab.api import Lab
    from cmlab.faults.nemesis import Nemesis


@dataclass(frozen=True)
class Scenario:
    """
    :param fault: builds the fault when the trial starts (targets are live).
    :param rto_bound_s: the longest client write outage the engine promises,
        seconds, from its timing; None when it promises none here.
    :param failover: True: a new primary must be promoted; False: the primary
        must stay; None: either is legitimate.
    :param prepare: puts the cluster in the scenario's starting shape (e.g. the
        primary in a given AZ) before the probes start.
    :param min_azs: the scenario needs at least this many AZs.
    """

    name: str
    summary: str
    fault: Callable[["Nemesis"], Fault]
    rto_bound_s: Callable[[Timing], float] | None
    failover: bool | None
    no_lost_writes: bool = True
    no_split_brain: bool = True
    notes: str = ""
    prepare: Callable[["Lab"], None] | None = None
    min_azs: int = 1

    def hold_s(self, timing: Timing) -> float:
        """How long the fault stays at most, seconds: past the bound, or past a
        failover's worth of time when no bound is promised."""
        return self._bound_or_failover_s(timing) + 5.0

    def min_hold_s(self, timing: Timing) -> float:
        """How long the fault stays at least, seconds. A fault the manager may
        ride out (no failover promised) stays for the bound, so that whatever the
        manager does about it has happened; healing it once writes flow would
        test nothing. After a promised failover, the recovery shows the reaction."""
        return 0.0 if self.failover is True else self._bound_or_failover_s(timing)

    def _bound_or_failover_s(self, timing: Timing) -> float:
        return self.rto_bound_s(timing) if self.rto_bound_s else timing.failover_s


def _primary_az(lab: "Lab") -> str:
    primary = lab.wait_ready(lab.timing.start_s).primary
    assert primary is not None
    return lab.plan.node(primary).az


def _quorum_count(lab: "Lab", az: str) -> int:
    return sum(1 for n in lab.plan.nodes if n.az == az and "quorum" in n.roles)


def _majority_az(lab: "Lab") -> str:
    return max((a.name for a in lab.plan.azs), key=lambda az: (_quorum_count(lab, az), -lab.plan.az(az).priority))


def _minority_az(lab: "Lab") -> str:
    return min((a.name for a in lab.plan.azs), key=lambda az: (_quorum_count(lab, az), lab.plan.az(az).priority))


def _primary_to(az_of: Callable[["Lab"], str]) -> Callable[["Lab"], None]:
    def prepare(lab: "Lab") -> None:
        want = az_of(lab)
        if _primary_az(lab) != want:
            candidate = next(n.name for n in lab.plan.nodes if n.az == want and "database" in n.roles)
            lab.switchover(candidate)
    return prepare


def _other_azs(n: "Nemesis") -> Fault:
    primary_az = _primary_az(n.lab)
    return n.split_azs([a.name for a in n.lab.plan.azs if a.name != primary_az])


def _primary_az_away(n: "Nemesis") -> Fault:
    return n.split_azs([_primary_az(n.lab)])


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("kill-primary", "docker kill of the primary's container (the host dies at once)",
             lambda n: n.crash("primary"), lambda t: t.failover_s, failover=True),
    Scenario("freeze-primary-db", "SIGSTOP of the primary's database processes (CM's 'phony dead')",
             lambda n: n.freeze("primary", "database"), lambda t: t.frozen_primary_bound_s, failover=True),
    Scenario("isolate-primary", "the primary's node cut from every other node; clients still reach it",
             lambda n: n.isolate("primary"), lambda t: t.failover_s, failover=True),
    Scenario("isolate-arbiter-leader", "the quorum leader's node cut from every other node",
             lambda n: n.isolate("arbiter-leader"), lambda t: t.quorum_leader_loss_bound_s, failover=None,
             notes=("a failover happens only when the quorum leader is also the primary; otherwise the "
                    "primary's manager may lose its store during the quorum's election and demote itself "
                    "before promoting again (Patroni without failsafe_mode)")),
    Scenario("vip-removed", "the VIP taken off the primary behind the manager's back",
             lambda n: n.vip_remove(), lambda t: t.vip_repair_s, failover=False),
    Scenario("split-az-majority-primary", "the primary in the AZ with the quorum majority; the other AZs cut away at the router",
             _other_azs, lambda t: t.failover_s, failover=False, prepare=_primary_to(_majority_az), min_azs=2),
    Scenario("split-az-minority-primary", "the primary in the AZ with the quorum minority, cut away at the router",
             _primary_az_away, None, failover=None, prepare=_primary_to(_minority_az), min_azs=2,
             notes=("no write-availability bound: with synchronous replication only the sync standby may be "
                    "promoted, so if it sits in the cut-off minority the majority cannot promote anyone and writes "
                    "stop until the heal (Patroni synchronous_mode; CM quorum mode likewise). No lost "
                    "acknowledged write and no split brain are still promised.")),
]}


def get(name: str) -> Scenario:
    """The scenario called ``name``.

    :raises CmlabError: unknown name (the message lists the scenarios).
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise CmlabError(f"unknown scenario '{name}' (scenarios: {', '.join(SCENARIOS)})") from None
