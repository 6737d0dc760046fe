"""Assertions that read like the claim, for tests::

    assert_rto_under(trial, 17.0)
    assert_no_lost_writes(trial)
    assert_no_split_brain(trial)

Each raises ``AssertionError`` whose message shows the relevant excerpt of
the trial's timeline (times in seconds from the fault).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmlab.checkers.timeline import excerpt

if TYPE_CHECKING:
    from cmlab.trials import Trial


def assert_rto_under(trial: "Trial", bound_s: float) -> None:
    """The client write outage through the VIPs is at most ``bound_s`` seconds."""
    m = trial.metrics
    if m.client_rto_s is None or m.client_rto_s > bound_s:
        worst = max(m.outages, key=lambda o: o["seconds"], default=None)
        around = (worst["start"], worst["end"]) if worst else (0.0, bound_s)
        raise AssertionError(f"client RTO {m.client_rto_s} s exceeds {bound_s:.1f} s in {m.scenario} "
                             f"trial {trial.index}\n" + excerpt(trial.history, *around))


def assert_no_lost_writes(trial: "Trial") -> None:
    """Every acknowledged write is on the final primary."""
    if not trial.metrics.lost_writes_checked:
        raise AssertionError(f"lost writes could not be checked in {trial.metrics.scenario} trial {trial.index}: "
                             "no primary after the heal\n" + excerpt(trial.history, 0, 1e9))
    lost = trial.metrics.lost_writes
    if lost:
        first = min(w["acked_s"] for w in lost)
        listing = ", ".join(f"{w['writer']}#{w['seq']} (acked by {w['node']} at {w['acked_s']:+.3f} s)" for w in lost[:20])
        raise AssertionError(f"{len(lost)} acknowledged writes lost in {trial.metrics.scenario} trial {trial.index}: "
                             f"{listing}\n" + excerpt(trial.history, first - 1, first + 1))


def assert_no_split_brain(trial: "Trial") -> None:
    """No two nodes acknowledged writes as primary at the same time."""
    sb = trial.metrics.split_brain
    if sb:
        s = sb[0]
        raise AssertionError(f"split brain in {trial.metrics.scenario} trial {trial.index}: {s['nodes']} both "
                             f"acknowledged writes from {s['start']:+.3f} s to {s['end']:+.3f} s\n"
                             + excerpt(trial.history, s["start"] - 1, s["end"] + 1))


def assert_failover(trial: "Trial", expected: bool | None) -> None:
    """A new primary was promoted (True), or the primary stayed (False); None: either."""
    if expected is not None and trial.metrics.failover != expected:
        what = "a failover" if expected else "no failover"
        raise AssertionError(f"expected {what} in {trial.metrics.scenario} trial {trial.index}; "
                             f"primary {trial.metrics.old_primary} -> {trial.metrics.new_primary}\n"
                             + excerpt(trial.history, -1, (trial.metrics.client_rto_s or 5) + 1))
