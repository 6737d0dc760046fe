"""Scenarios: bounds and hold times derived from an engine's timing (no Docker)."""

from __future__ import annotations

import pytest

from cmlab.engines.base import Timing
from cmlab.errors import CmlabError
from cmlab.scenarios import SCENARIOS, get

TIMING = Timing(start_s=80.0, failover_s=17.0, vip_s=2.5, vip_repair_s=12.5, quorum_leader_loss_s=18.0)


def test_a_promised_failover_is_healed_once_writes_flow_again():
    kill = get("kill-primary")
    assert kill.failover is True
    assert kill.min_hold_s(TIMING) == 0.0
    assert kill.hold_s(TIMING) == TIMING.failover_s + 5.0


def test_a_fault_the_manager_may_ride_out_stays_for_its_bound():
    leader = get("isolate-arbiter-leader")
    assert leader.rto_bound_s(TIMING) == 18.0  # the engine's own quorum-leader-loss figure
    assert leader.min_hold_s(TIMING) == 18.0 < leader.hold_s(TIMING)
    majority = get("split-az-majority-primary")
    assert majority.failover is False and majority.min_hold_s(TIMING) == TIMING.failover_s
    minority = get("split-az-minority-primary")
    assert minority.rto_bound_s is None and minority.min_hold_s(TIMING) == TIMING.failover_s


def test_an_engine_without_a_quorum_leader_figure_is_bound_by_its_failover_time():
    plain = Timing(start_s=80.0, failover_s=17.0, vip_s=2.5)
    assert get("isolate-arbiter-leader").rto_bound_s(plain) == 17.0


def test_every_scenario_holds_at_most_past_its_minimum():
    for scenario in SCENARIOS.values():
        assert scenario.min_hold_s(TIMING) < scenario.hold_s(TIMING), scenario.name


def test_an_unknown_scenario_lists_the_known_ones():
    with pytest.raises(CmlabError, match="kill-primary"):
        get("kill-everything")
