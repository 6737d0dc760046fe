"""Metrics, statistics and assertions on synthetic histories (no Docker)."""

from __future__ import annotations

import pytest

from cmlab.checkers import assertions
from cmlab.checkers.metrics import compute, duplicate_vip, split_brain
from cmlab.checkers.stats import percentile, summary
from cmlab.history import History, WriteRec
from cmlab.trials import Trial


def history(with_split_brain: bool = False) -> History:
    """pg1 primary until the fault at t=10, pg2 promoted at 14; 20 ms writes."""
    h = History()
    h.meta = {"scenario": "kill-primary", "old_primary": "pg1", "final_primary": "pg2",
              "database_nodes": ["pg1", "pg2"], "vip_of": {"pg1": "vip-az1", "pg2": "vip-az1"},
              "cadence": {"write_s": 0.02, "fast_s": 0.02}, "probe_window": [8.0, 20.0]}
    h.events = [{"event": "fault-applied", "t": 10.0, "t_call": 9.99}, {"event": "healed", "t": 16.0}]
    seq = 0
    t = 8.0
    while t < 20.0:
        seq += 1
        if t < 10.0:
            h.writes.append(WriteRec("vip:vip-az1", seq, t, t + 0.005, "pg1"))
        elif t < 14.0:
            h.writes.append(WriteRec("vip:vip-az1", seq, t, None, None, "OperationalError", unknown=True))
        else:
            h.writes.append(WriteRec("vip:vip-az1", seq, t, t + 0.005, "pg2"))
        t += 0.02
    for i, t in enumerate([x / 50 for x in range(700, 1000)]):  # direct to pg2 from 14 s
        h.writes.append(WriteRec("node:pg2", i + 1, t, t + 0.004 if t >= 14.0 else None, "pg2" if t >= 14.0 else None))
    if with_split_brain:
        h.writes.append(WriteRec("node:pg1", 1, 14.5, 14.51, "pg1"))
    h.leader = [(9.0, 0.001, "pg1"), (12.0, 0.001, None), (13.9, 0.001, "pg2")]
    h.vips = [(9.0, 0.001, {"vip-az1": ["pg1"]}), (12.0, 0.001, {"vip-az1": []}), (14.1, 0.001, {"vip-az1": ["pg2"]}),
              (14.2, 0.001, {"vip-az1": ["pg2", "pg1"]}), (14.3, 0.001, {"vip-az1": ["pg2"]})]
    h.roles = [(9.0, 0.01, {"node": "pg1", "role": "primary", "healthy": True, "followers": ["pg2"]}),
               (15.0, 0.01, {"node": "pg2", "role": "primary", "healthy": True, "followers": []}),
               (17.0, 0.01, {"node": "pg2", "role": "primary", "healthy": True, "followers": ["pg1"]})]
    return h


def test_phases_are_measured_from_the_fault():
    h = history()
    stored = {(w.writer, w.seq) for w in h.writes if w.acked is not None}
    m = compute(h, stored)
    assert m.failover and (m.old_primary, m.new_primary) == ("pg1", "pg2")
    assert m.detection_s == pytest.approx(2.0)
    assert m.promotion_s == pytest.approx(4.004, abs=0.001)
    assert m.vip_s == pytest.approx(4.1)
    assert m.client_rto_s == pytest.approx(4.02, abs=0.03)
    assert m.following_s == pytest.approx(7.0)
    assert m.lost_writes == [] and m.split_brain == []
    assert m.outages and m.outages[0]["seconds"] == pytest.approx(m.client_rto_s)


def test_lost_writes_are_listed():
    h = history()
    stored = {(w.writer, w.seq) for w in h.writes if w.acked is not None} - {("vip:vip-az1", 3)}
    m = compute(h, stored)
    assert [(w["writer"], w["seq"], w["node"]) for w in m.lost_writes] == [("vip:vip-az1", 3, "pg1")]
    with pytest.raises(AssertionError, match="1 acknowledged writes lost.*vip:vip-az1#3"):
        assertions.assert_no_lost_writes(Trial(1, None, h, m))


def test_two_nodes_acknowledging_at_once_is_split_brain():
    h = history(with_split_brain=True)
    sb = split_brain(h.writes, 10.0)
    assert len(sb) == 1 and sb[0]["nodes"] == ["pg1", "pg2"]
    m = compute(h, {(w.writer, w.seq) for w in h.writes})
    with pytest.raises(AssertionError, match=r"split brain.*\['pg1', 'pg2'\][\s\S]*timeline from"):
        assertions.assert_no_split_brain(Trial(1, None, h, m))


def test_a_vip_on_two_nodes_is_a_duplicate_interval():
    runs = duplicate_vip(history(), 10.0)
    assert len(runs) == 1 and runs[0]["nodes"] == ["pg1", "pg2"] and runs[0]["start"] == pytest.approx(4.2)
    # samples come at every change: the interval lasts until the sample that no longer shows it
    assert runs[0]["end"] == pytest.approx(4.3) and runs[0]["seconds"] == pytest.approx(0.1)


def test_the_rto_assertion_shows_the_timeline():
    h = history()
    m = compute(h, None)
    with pytest.raises(AssertionError, match="exceeds 1.0 s[\\s\\S]*manager names no primary"):
        assertions.assert_rto_under(Trial(1, None, h, m), 1.0)


def test_history_round_trips_through_its_file(tmp_path):
    h = history()
    h.save(tmp_path / "h.jsonl")
    again = History.load(tmp_path / "h.jsonl")
    assert compute(again, None).client_rto_s == compute(h, None).client_rto_s


def test_percentiles_are_measured_values():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    s = summary([1.0, None, 3.0])
    assert (s["n"], s["missing"], s["min"], s["max"]) == (2, 1, 1.0, 3.0)


def test_resolution_is_the_readings_spacing_when_they_are_slower_than_asked():
    # CM: the probes ask every 200 ms, but one real cm_ctl query takes ~0.75 s.
    h = history()
    h.meta["cadence"]["leader_s"] = 0.2
    h.leader = [(9.0 + 0.95 * i, 0.75, "pg1" if i < 5 else "pg2") for i in range(10)]
    assert compute(h).resolution_s == pytest.approx(0.95)
    h.leader = [(9.0 + 0.2 * i, 0.01, "pg1") for i in range(40)]
    assert compute(h).resolution_s == pytest.approx(0.2)


def test_the_vip_arriving_before_the_first_direct_write_counts_at_its_arrival():
    """Seen on a Patroni lab: vip-manager added the VIP at 11.13 s, the first
    direct write was acknowledged a few milliseconds later, and the old rule
    (samples at or after that write) reported the next sample, 11.93 s."""
    h = history()
    h.vips = [(9.0, 0.001, {"vip-az1": ["pg1"]}), (12.0, 0.001, {"vip-az1": []}),
              (13.99, 0.001, {"vip-az1": ["pg2"]}), (14.8, 0.001, {"vip-az1": ["pg2"]})]
    m = compute(h)
    assert m.vip_s == pytest.approx(3.99)
    assert m.vip_after_promotion_s == pytest.approx(3.99 - 4.004, abs=0.001)
    assert m.vip_after_promotion_s < 0


def test_the_vip_held_by_the_old_primary_alone_is_not_an_arrival():
    h = history()
    h.vips = [(9.0, 0.001, {"vip-az1": ["pg1"]}), (10.5, 0.001, {"vip-az1": ["pg1"]})]
    assert compute(h).vip_s is None


def test_every_registered_metric_is_in_the_trial_json_the_report_and_junit(tmp_path):
    from xml.etree import ElementTree as ET

    from cmlab.checkers.metrics import METRICS, SUMMARISED
    from cmlab.report import build, junit
    from cmlab.scenarios import get

    h = history()
    h.meta["timing"] = {"start_s": 60.0, "failover_s": 30.0, "vip_s": 5.0}
    m = compute(h)
    assert list(m.to_json()) == [x.name for x in METRICS]
    doc = build(get("kill-primary"), [(1, h, m)], {"lab": "t", "engine": "e", "parameters": {}})
    assert list(doc["summary"]) == list(SUMMARISED)
    assert {x.total for x in METRICS if x.total} | {"trials"} == set(doc["totals"])
    names = {p.get("name") for p in ET.fromstring(junit(doc)).iter("property")}
    assert {x.name for x in METRICS} <= names


def test_the_html_report_explains_itself():
    """Each metric with its definition, promises as yes/no with what they say, a
    verdict mark per promise (never Python's True), and trials in collapsible blocks."""
    import html as html_lib

    from cmlab.checkers.metrics import METRICS
    from cmlab.checkers.promises import PROMISES
    from cmlab.report import build, html_report
    from cmlab.scenarios import get

    h = history()
    h.meta["timing"] = {"start_s": 60.0, "failover_s": 30.0, "vip_s": 5.0}
    doc = build(get("kill-primary"), [(1, h, compute(h)), (2, h, compute(h))], {"lab": "t", "engine": "e", "parameters": {}})
    page = html_report(doc, {1: "<svg>one</svg>", 2: "<svg>two</svg>"})
    for metric in METRICS:
        assert f"<th>{metric.name}</th>" in page and html_lib.escape(metric.definition) in page, metric.name
    for promise in PROMISES:
        if promise.key in doc["scenario"]["promises"]:
            assert html_lib.escape(promise.says) in page
    assert ">True<" not in page and ">False<" not in page
    assert page.count("<details") == 2 and "<svg>one</svg>" in page
    assert "✓" in page and "grey ×" in page  # the marks and the timeline's legend in words


def test_the_schema_doc_lists_every_metric_as_registered():
    import os
    from pathlib import Path

    from cmlab.checkers.metrics import markdown_table

    doc = Path(__file__).parents[2] / "docs" / "report-schema.md"
    text = doc.read_text()
    begin, end = "<!-- metrics:begin -->\n", "<!-- metrics:end -->"
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    want = f"{head}{begin}{markdown_table()}\n{end}{tail}"
    if os.environ.get("CMLAB_UPDATE_GOLDEN"):
        doc.write_text(want)
        text = want
    assert text == want, f"{doc} is not current (CMLAB_UPDATE_GOLDEN=1 rewrites it)"


def test_a_trial_the_host_starved_is_marked_and_the_scenario_says_what_follows():
    from dataclasses import replace

    from cmlab.report import build
    from cmlab.scenarios import get

    quiet = history()
    quiet.meta["harness"] = {"late_ticks": [[11.0, 0.012]], "late_ticks_total": 1,
                             "host_at_start": {"load1": 0.3, "cpu_some_avg10": 0.0}, "host_at_end": None}
    m = compute(quiet)
    # 12 ms late against a 20 ms resolution, the fault in effect 10 ms after its call: not starved.
    assert m.starved == [] and m.probe_late_max_s == 0.012 and m.fault_effect_s == pytest.approx(0.01)
    starved = history()
    starved.meta["harness"] = {"late_ticks": [[11.2, 15.0], [12.0, 0.03]], "late_ticks_total": 2}  # resolution 3 s: bound 12 s
    starved.events[0] = {"event": "fault-applied", "t": 10.0, "t_call": -14.0}
    s = compute(starved)
    assert [x["what"] for x in s.starved] == ["probe loop", "fault"]
    assert s.starved[0]["says"] == "probe loop 15000 ms late at +1.2 s" and s.starved[1]["says"] == "fault applied 24.0 s after its call"
    for h in (quiet, starved):
        h.meta["timing"] = {"start_s": 60.0, "failover_s": 30.0, "vip_s": 5.0}
    trials = [(1, quiet, m), (2, starved, s)]
    scenario = get("kill-primary")
    report = build(scenario, trials, {})
    assert report["totals"]["trials"] == 2 and report["discarded_trials"] == []
    assert report["trials"][1]["verdicts"]["harness_not_starved"] is None
    fail = replace(scenario, spec=scenario.spec.model_copy(update={"on_starved": "fail"}))
    report = build(fail, trials, {})
    assert report["trials"][1]["verdicts"]["harness_not_starved"] is False
    assert report["trials"][0]["verdicts"]["harness_not_starved"] is True
    discard = replace(scenario, spec=scenario.spec.model_copy(update={"on_starved": "discard"}))
    report = build(discard, trials, {})
    assert report["discarded_trials"] == [2] and report["totals"]["trials"] == 1
    assert report["summary"]["client_rto_s"]["n"] == 1 and report["trials"][1]["discarded"]
