"""What a scenario promises, one entry per promise (:data:`PROMISES`): its
key in the report's ``scenario.promises``, its key in each trial's
``verdicts``, what the scenario promises (from its ``expect:``) and how a
trial is judged against it. The verdicts, the report's promise table and the
run's pass or fail read this list; docs/report-schema.md describes the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmlab.checkers.metrics import TrialMetrics
    from cmlab.engines.base import Timing
    from cmlab.scenarios import Scenario


@dataclass(frozen=True)
class Promise:
    """A promise a scenario may make.

    :param key: its key in the report's ``scenario.promises``.
    :param verdict: its key in a trial's ``verdicts``.
    :param says: what it says, in plain words.
    :param shown: the value the report shows for it (the bound, the expected failover, a flag).
    :param made: whether the scenario makes it, given the shown value.
    :param kept: whether a trial kept it, given the shown value and the trial's metrics.
    """

    key: str
    verdict: str
    says: str
    shown: Callable[["Scenario", "Timing | None"], Any]
    made: Callable[[Any], bool]
    kept: Callable[[Any, "TrialMetrics"], bool]
    #: Shown in the report's ``scenario.promises`` (the harness's own promise is only a verdict).
    in_report: bool = True

    def verdict_of(self, scenario: "Scenario", timing: "Timing", m: "TrialMetrics") -> bool | None:
        """Kept (True), broken (False), or not made (None)."""
        value = self.shown(scenario, timing)
        return self.kept(value, m) if self.made(value) else None


PROMISES: tuple[Promise, ...] = (
    Promise("rto_bound_s", "rto_under_bound", "the longest client write outage is under the bound (seconds)",
            lambda sc, t: sc.rto_bound_s(t) if t is not None else None, lambda v: v is not None,
            lambda v, m: m.client_rto_s is not None and m.client_rto_s <= v),
    Promise("failover", "failover_as_expected", "a new primary is promoted (true) or the primary stays (false)",
            lambda sc, t: sc.failover, lambda v: v is not None, lambda v, m: m.failover == v),
    Promise("no_lost_writes", "no_lost_writes", "every acknowledged write is on the final primary",
            lambda sc, t: sc.no_lost_writes, bool, lambda v, m: bool(m.lost_writes_checked and not m.lost_writes)),
    Promise("no_split_brain", "no_split_brain", "no two nodes acknowledge writes as primary at once",
            lambda sc, t: sc.no_split_brain, bool, lambda v, m: not m.split_brain),
    Promise("on_starved", "harness_not_starved", "the host did not distort the trial beyond its resolution "
            "(with on-starved: fail)", lambda sc, t: sc.spec.on_starved == "fail", bool, lambda v, m: not m.starved,
            in_report=False),
)


def verdicts(scenario: "Scenario", timing: "Timing", m: "TrialMetrics") -> dict[str, bool | None]:
    """Each promise of the scenario, kept (True), broken (False) or not made (None)."""
    return {p.verdict: p.verdict_of(scenario, timing, m) for p in PROMISES}


def promised(scenario: "Scenario", timing: "Timing | None") -> dict[str, Any]:
    """The report's ``scenario.promises``: what the scenario promises, by key."""
    return {p.key: p.shown(scenario, timing) for p in PROMISES if p.in_report}
