"""Failover scenarios on postgres-patroni, measured, with the engine's promises asserted.

Each scenario runs one trial; the bound comes from the lab's own timing
parameters (ttl, loop_wait...). Figures are printed (pytest -s shows them),
and the run's reports are checked to exist and parse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest

from cmlab.api import Lab
from cmlab.checkers.assertions import assert_failover, assert_no_lost_writes, assert_no_split_brain, assert_rto_under
from cmlab.runtime.capabilities import capabilities
from cmlab.scenarios import get
from cmlab.topology.schema import Role
from cmlab.trials import run_scenario

from .conftest import quickstart_lab

pytestmark = pytest.mark.docker


quick_lab = quickstart_lab("e2e-failover")


def measured(lab: Lab, name: str, tmp_path) -> None:
    scenario = get(name)
    if not capabilities()["root"].ok:
        pytest.skip("the scenarios' faults need root")
    ended: list[tuple[int, int]] = []
    run = run_scenario(lab, scenario, trials=1, directory=tmp_path / name,
                       on_trial=lambda t, n: ended.append((t.index, n)))
    assert ended == [(1, 1)], "each trial is announced as it ends"
    trial = run.trials[0]
    m = trial.metrics
    fmt = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
    bound = scenario.rto_bound_s(lab.timing)
    assert m.quorum_leader in {n.name for n in lab.plan.nodes_with(Role.quorum)}
    print(f"\n{name}: {m.old_primary} -> {m.new_primary} (quorum leader {m.quorum_leader}); client RTO {fmt(m.client_rto_s)} (bound {fmt(bound)}), "
          f"detection {fmt(m.detection_s)}, promotion {fmt(m.promotion_s)}, VIP {fmt(m.vip_s)}, "
          f"following {fmt(m.following_s)}; {m.acked_writes} acked, {len(m.lost_writes)} lost, "
          f"{len(m.split_brain)} split-brain, {len(m.duplicate_vip)} duplicate-VIP intervals; probes {m.probe_cpu_percent} % CPU")
    if bound is not None:
        assert_rto_under(trial, bound)
    assert_failover(trial, scenario.failover)
    if scenario.no_lost_writes:
        assert_no_lost_writes(trial)
    if scenario.no_split_brain:
        assert_no_split_brain(trial)
    # The reported resolution is the readings' typical spacing: the cadence (or the engine's
    # floor, CM: 200 ms) plus a reading's own time (a real cm_ctl query: 0.75 to 1.2 s), at
    # most twice that when a loaded host delays every other reading (real CM: 1.71 s
    # spacing for 1.17 s readings).
    floor = max(0.02, lab.engine.min_reading_interval_s)
    durations = sorted(d for _, d, _ in trial.history.leader)
    assert floor <= m.resolution_s + 1e-3 <= 2 * (floor + durations[len(durations) // 2]) + 0.01
    doc = json.loads((run.directory / "report.json").read_text())
    assert doc["schema"] == "cmlab.run/1" and doc["passed"] is True
    assert ET.parse(run.directory / "junit.xml").getroot().get("failures") == "0"
    assert "<svg" in (run.directory / "report.html").read_text()
    assert (run.directory / "trial-01" / "timeline.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["kill-primary", "freeze-primary-db", "isolate-primary", "isolate-quorum-leader", "vip-removed"])
def test_one_az_scenario(quick_lab: Lab, name: str, tmp_path):
    measured(quick_lab, name, tmp_path)


@pytest.mark.parametrize("name", ["split-az-majority-primary", "split-az-minority-primary"])
def test_az_partition_scenario(two_az_lab: Lab, name: str, tmp_path):
    measured(two_az_lab, name, tmp_path)


def test_reports_render_again_from_the_saved_run(quick_lab: Lab, tmp_path):
    run = run_scenario(quick_lab, get("vip-removed"), trials=1, directory=tmp_path / "again")
    (run.directory / "report.html").unlink()
    result = subprocess.run([sys.executable, "-m", "cmlab.cli", "report", str(run.directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (run.directory / "report.html").exists() and "client_rto_s" in result.stdout


def test_a_seeded_random_scenario_runs_twice_to_the_same_step_timeline(quick_lab: Lab, tmp_path):
    if not capabilities()["root"].ok:
        pytest.skip("the scenarios' faults need root")

    def steps(run) -> list[tuple]:
        timeline = json.loads((run.trials[0].directory / "schedule.json").read_text())
        return [(s["verb"], s["outcome"], (s.get("fault") or {}).get("params"), s["args"].get("seconds")) for s in timeline]

    scenario = get("churn-isolate-one")
    runs = [run_scenario(quick_lab, scenario, trials=1, directory=tmp_path / f"churn-{i}", seed=11) for i in (1, 2)]
    first, second = steps(runs[0]), steps(runs[1])
    print(f"\nchurn-isolate-one, seed 11: {first}")
    assert first == second
    assert [s[0] for s in first if s[1] != "skipped: past the time limit"][:2] == ["fault", "sleep"]
    assert any(s[0] == "fault" and s[1] == "applied" for s in first)
    for run in runs:
        doc = json.loads((run.directory / "report.json").read_text())
        assert doc["seed"] == 11 and (run.directory / "scenario.yaml").read_text() == scenario.text
        assert_no_lost_writes(run.trials[0])
        assert_no_split_brain(run.trials[0])
