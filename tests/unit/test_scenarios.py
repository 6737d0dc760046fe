"""Scenario files, their durations, their seeded composition and the schedule
interpreter (no Docker: the interpreter runs on a stand-in lab)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cmlab.engines.base import ClusterState, NodeRole, NodeState, Timing
from cmlab.engines.cluster import abilities, attach
from cmlab.engines.registry import default_registry
from cmlab.errors import CmlabError, EngineError, ScenarioError
from cmlab.faults import targets
from cmlab.faults.nemesis import Applied, Nemesis
from cmlab.faults.process import Crash
from cmlab.scenarios import SCENARIOS, duration, get, load, loads
from cmlab.scenarios.schedule import ScheduleRunner
from cmlab.topology import load as load_topology

ROOT = Path(__file__).resolve().parents[2]
TIMING = Timing(start_s=80.0, failover_s=17.0, vip_s=2.5, vip_repair_s=12.5, quorum_leader_loss_s=18.0)


def schedule(name: str, timing: Timing = TIMING, seed: int = 1, trial: int = 1) -> list[dict]:
    return [p.to_json() for p in get(name).steps(timing, seed, trial)[1]]


# ---- the built-in scenarios -------------------------------------------------------------------


def test_every_builtin_scenario_is_a_file_of_scenarios_dir():
    files = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    assert files == sorted(SCENARIOS) and len(files) >= 7
    for s in SCENARIOS.values():
        assert Path(s.source).parent == (ROOT / "scenarios").resolve() and s.summary


def test_a_promised_failover_is_healed_once_writes_flow_again():
    steps = schedule("kill-primary")
    assert [s["verb"] for s in steps] == ["fault", "wait", "heal"]
    assert steps[0]["args"] == {"kind": "crash", "target": "primary"}
    assert steps[1]["args"] == {"until": "writes-resumed", "at_least_s": 0.0, "deadline_s": TIMING.failover_s + 5,
                                "on_timeout": "continue"}
    assert get("kill-primary").rto_bound_s(TIMING) == TIMING.failover_s and get("kill-primary").failover is True


def test_a_fault_the_manager_may_ride_out_stays_for_its_bound():
    leader = get("isolate-quorum-leader")
    assert leader.rto_bound_s(TIMING) == 18.0  # the engine's own quorum-leader-loss figure
    wait = schedule("isolate-quorum-leader")[1]["args"]
    assert wait["at_least_s"] == 18.0 < wait["deadline_s"]
    majority = schedule("split-az-majority-primary")
    assert get("split-az-majority-primary").failover is False and majority[1]["args"]["at_least_s"] == TIMING.failover_s
    minority = get("split-az-minority-primary")
    assert minority.rto_bound_s(TIMING) is None and schedule("split-az-minority-primary")[1]["args"]["at_least_s"] == 17.0
    assert [p.verb for p in minority.steps(TIMING, 1, 1)[0]] == ["primary-in"]


def test_an_engine_without_a_quorum_leader_figure_is_bound_by_its_failover_time():
    plain = Timing(start_s=80.0, failover_s=17.0, vip_s=2.5)
    assert get("isolate-quorum-leader").rto_bound_s(plain) == 17.0
    assert get("freeze-primary-db").rto_bound_s(Timing(start_s=80, failover_s=17, vip_s=2, frozen_primary_s=40)) == 40


def test_an_unknown_scenario_lists_the_known_ones():
    with pytest.raises(CmlabError, match="kill-primary"):
        get("kill-everything")


# ---- durations --------------------------------------------------------------------------------


def test_durations_are_seconds_or_expressions_of_the_timing():
    env = duration.environment(TIMING, rto_s=20.0)
    assert duration.seconds(3, env) == 3.0
    assert duration.seconds("failover_s + 5", env) == 22.0
    assert duration.seconds("max(vip_s, 2) * 2 - 1", env) == 4.0
    assert duration.seconds("rto / 2", env) == 10.0
    assert duration.names_in("min(start_s, failover_s)") == {"start_s", "failover_s"}


@pytest.mark.parametrize("text", ["__import__('os')", "failover_s.real", "fail_s", "failover_s ** 2", "[1]", "'x'",
                                  "lambda: 1", "failover_s if 1 else 2"])
def test_a_duration_expression_evaluates_nothing_but_its_grammar(text):
    with pytest.raises(ValueError):
        duration.names_in(text)


def test_a_negative_duration_is_refused():
    with pytest.raises(ValueError, match="negative"):
        duration.seconds("vip_s - failover_s", duration.environment(TIMING, None))
    with pytest.raises(ValueError, match="no rto-under"):
        duration.seconds("rto", duration.environment(TIMING, None))


# ---- the file's errors ------------------------------------------------------------------------


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        loads(text, "bad.yaml", "bad")
    return str(info.value)


def test_an_unknown_fault_is_shown_at_its_line_with_the_faults_known():
    msg = error_of("summary: x\nschedule:\n  - fault: crsh\n    target: primary\n")
    assert "bad.yaml:3:5: schedule[0]: unknown fault 'crsh'" in msg and "crash" in msg


def test_a_faults_wrong_argument_names_the_arguments_it_takes():
    msg = error_of("summary: x\nschedule:\n  - fault: kill\n    target: primary\n    signl: TERM\n")
    assert "bad.yaml:3:5" in msg and "fault 'kill' takes target, process, signal?, every?" in msg


def test_an_unknown_timing_name_is_shown_where_it_is_used():
    msg = error_of("summary: x\nschedule:\n  - fault: crash\n    target: primary\n"
                   "  - wait: writes-resumed\n    deadline: fail_s + 5\n")
    assert "bad.yaml:6:15: schedule[1].deadline: unknown name 'fail_s'" in msg and "failover_s" in msg


def test_a_step_needs_exactly_one_verb():
    msg = error_of("summary: x\nschedule:\n  - fault: crash\n    target: primary\n  - wait: ready\n    heal: all\n")
    assert "bad.yaml:5:5: schedule[1]: a step is a mapping with exactly one of the keys" in msg
    msg = error_of("summary: x\nschedule:\n  - {fault: crash, target: primary}\n  - {repeat: 2, steps: [hael]}\n")
    assert "schedule[1].steps[0]: a step is" in msg


def test_rto_in_a_wait_needs_a_promised_bound():
    msg = error_of("summary: x\nschedule:\n  - {fault: crash, target: primary}\n  - {wait: ready, deadline: rto}\n")
    assert "schedule[1].deadline: uses rto, but expect has no rto-under" in msg


def test_setup_holds_no_fault_and_the_schedule_holds_one():
    msg = error_of("summary: x\nsetup:\n  - {fault: crash, target: primary}\nschedule:\n  - heal\n")
    assert "bad.yaml:3:5: setup[0]: 'fault' cannot run in setup" in msg
    assert "schedule: no fault step" in msg


def test_an_unknown_key_is_refused_with_the_schema_command():
    msg = error_of("summary: x\nexpect: {failover: true, rto: 3}\nschedule:\n  - {fault: crash, target: primary}\n")
    assert "bad.yaml:2:31: expect.rto: unknown key" in msg and "cmlab schema --scenario" in msg


def test_a_scenario_file_is_read_with_its_name_from_the_file(tmp_path):
    f = tmp_path / "my-case.yaml"
    f.write_text("summary: mine\nschedule:\n  - {fault: crash, target: primary}\n  - heal\n")
    s = get(str(f))
    assert s.name == "my-case" and s.text == f.read_text() and s.failover is None
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load(tmp_path / "missing.yaml")


# ---- seeded composition -----------------------------------------------------------------------

RANDOM = """
summary: seeded churn
time-limit: 120
schedule:
  - one-of:
      - {fault: isolate, target: one}
      - {fault: kill, target: one, process: database}
      - {fault: loss, target: minority, percent: 30}
  - stagger: 3
  - repeat: 3
    steps:
      - flip-flop:
          - {fault: isolate, target: one}
          - heal
        times: 2
        stagger: failover_s / 4
"""


def test_the_same_seed_draws_the_same_timeline_and_another_seed_another():
    s = loads(RANDOM, "random.yaml", "random")
    first = [p.to_json() for p in s.steps(TIMING, 42, 1)[1]]
    assert first == [p.to_json() for p in s.steps(TIMING, 42, 1)[1]]
    assert len(first) == 1 + 1 + 3 * 2 * 2 * 2  # one-of, stagger, repeat x flip-flop x (step + stagger)
    others = [[p.to_json() for p in s.steps(TIMING, seed, 1)[1]] for seed in range(10)]
    assert any(o != first for o in others)
    assert [p.to_json() for p in s.steps(TIMING, 42, 2)[1]] != first  # each trial draws its own
    sleeps = [p.args["seconds"] for p in s.steps(TIMING, 42, 1)[1] if p.verb == "sleep"]
    assert all(0 <= x <= 2 * TIMING.failover_s / 4 for x in sleeps[1:]) and 0 <= sleeps[0] <= 6


def test_the_seed_fixes_the_targets_a_shape_picks():
    plan = load_topology(ROOT / "topologies" / "two-az.yaml", default_registry())
    picks = set()
    for _ in range(2):
        _, _, nemesis_seed = get("kill-primary").steps(TIMING, 7, 1)
        picks.add(tuple(targets.resolve("one,minority", plan, None, random.Random(nemesis_seed))))
    assert len(picks) == 1


# ---- the interpreter, on a stand-in lab ----------------------------------------------------


class StandInNemesis(Nemesis):
    """The real fault builders over a stand-in cluster: faults are recorded, not applied."""

    def __init__(self, lab, primary: str, seed: str = "s") -> None:
        self.plan, self.rng, self.ctx = lab.plan, random.Random(seed), None
        self.primary = primary
        self.log: list[tuple[str, str]] = []
        self._active: list = []

    def resolve(self, spec: str) -> list[str]:
        state = ClusterState(tuple(NodeState(n.name, NodeRole.primary if n.name == self.primary else NodeRole.standby, True)
                                   for n in self.plan.nodes))
        return targets.resolve(spec, self.plan, state, self.rng)

    def apply(self, fault):
        self.log.append(("apply", fault.describe()))
        self._active.append(fault)
        now = time.monotonic()
        return Applied(fault, now, now)

    def heal(self):
        self.log.append(("heal", ""))
        undone, self._active = self._active, []
        return undone

    def active(self):
        return self._active

    def start_vip_flap(self, vip, node, period_s, duration_s):
        nemesis = self
        nemesis.log.append(("flap", f"{self._one(node)} every {period_s} s for {duration_s} s"))

        class Flap:
            def stop(self):
                nemesis.log.append(("flap-stopped", ""))
                return 3
        return Flap()


class StandInLab:
    def __init__(self, topology: str = "quickstart") -> None:
        self.plan = load_topology(ROOT / "topologies" / f"{topology}.yaml", default_registry())
        self.timing = Timing(start_s=5, failover_s=2, vip_s=1, poll_s=0.01)
        self.primary = self.plan.nodes[0].name
        self.switchovers: list[str] = []
        self.runtime = SimpleNamespace(vip_holders=lambda plan: {v.name: [self.primary] for v in plan.vips})
        self.cluster = SimpleNamespace(snapshot=lambda: SimpleNamespace(primary=self.primary))

    def wait_ready(self, deadline_s):
        return SimpleNamespace(primary=self.primary, ready=True)

    def status(self):
        return self.wait_ready(0)

    def switchover(self, candidate):
        self.switchovers.append(candidate)
        self.primary = candidate


def run_text(text: str, lab: StandInLab | None = None, seed: int = 1):
    lab = lab or StandInLab()
    scenario = loads(text, "t.yaml", "t")
    setup, steps, nemesis_seed = scenario.steps(lab.timing, seed, 1)
    nemesis = StandInNemesis(lab, lab.primary, nemesis_seed)
    events = SimpleNamespace(records=[], append=lambda kind, **f: events.records.append((kind, f)))
    runner = ScheduleRunner(lab, nemesis, events, None, lab.primary, scenario.time_limit_s(lab.timing))
    timeline = runner.run(setup) + runner.run(steps)
    return timeline, nemesis, lab, events


def test_the_interpreter_runs_the_steps_in_order_with_their_resolved_faults():
    timeline, nemesis, lab, events = run_text(
        "summary: x\nschedule:\n  - {fault: crash, target: primary}\n  - {sleep: 0.01}\n"
        "  - {fault: isolate, target: standbys}\n  - heal\n")
    assert [r["verb"] for r in timeline] == ["fault", "sleep", "fault", "heal"]
    assert [r["outcome"] for r in timeline] == ["applied", "slept", "applied", "healed"]
    assert timeline[0]["fault"]["kind"] == "crash" and timeline[0]["fault"]["params"]["nodes"] == (lab.primary,)
    assert Crash.from_record(timeline[0]["fault"]).nodes == (lab.primary,)
    assert [kind for kind, _ in nemesis.log] == ["apply", "apply", "heal"]
    assert all(r["t_start"] <= r["t_end"] for r in timeline)
    assert [t["verb"] for kind, t in events.records if kind == "step"] == ["fault", "sleep", "fault", "heal"]


def test_a_wait_ends_when_its_condition_holds_or_its_deadline_says_so():
    lab = StandInLab()
    timeline, *_ = run_text("summary: x\nschedule:\n  - {fault: crash, target: primary}\n"
                            "  - {wait: primary-changed, deadline: 0.2}\n  - {wait: ready, deadline: 1, at-least: 0.05}\n",
                            lab)
    assert [r["outcome"] for r in timeline] == ["applied", "timeout", "met"]
    assert timeline[2]["t_end"] - timeline[0]["t_effect"] >= 0.05
    with pytest.raises(CmlabError, match="wait: .*primary-changed"):
        run_text("summary: x\nschedule:\n  - {fault: crash, target: primary}\n"
                 "  - {wait: primary-changed, deadline: 0.1, on-timeout: fail}\n")


def test_setup_puts_the_primary_in_the_az_asked_for():
    lab = StandInLab("two-az")
    az2 = [a.name for a in lab.plan.azs if a.name != lab.plan.node(lab.primary).az][0]
    timeline, *_ = run_text(f"summary: x\nsetup:\n  - primary-in: {az2}\nschedule:\n  - {{fault: crash, target: primary}}\n", lab)
    assert timeline[0]["outcome"] == "switched" and lab.plan.node(lab.switchovers[0]).az == az2


def test_no_step_starts_past_the_time_limit():
    timeline, nemesis, *_ = run_text("summary: x\ntime-limit: 0.05\nschedule:\n  - {fault: crash, target: primary}\n"
                                     "  - {sleep: 0.1}\n  - {fault: isolate, target: primary}\n  - heal\n")
    assert [r["outcome"] for r in timeline] == ["applied", "slept", "skipped: past the time limit",
                                                "skipped: past the time limit"]


def test_a_seeded_schedule_runs_to_the_same_step_timeline_twice():
    def steps_of(seed: int) -> list[tuple]:
        timeline, *_ = run_text(RANDOM.replace("stagger: 3", "stagger: 0.001").replace("failover_s / 4", "0.001"),
                                seed=seed)
        return [(r["verb"], r.get("fault", {}).get("params"), r["args"].get("seconds")) for r in timeline]

    assert steps_of(5) == steps_of(5)
    assert any(steps_of(5) != steps_of(s) for s in (6, 7, 8))


# ---- sweeps -------------------------------------------------------------------------------


def test_a_sweep_runs_every_combination_of_its_values_in_the_files_order():
    from cmlab.sweep import settings_of

    assert settings_of({"ttl": [10, 20]}) == [{"ttl": 10}, {"ttl": 20}]
    assert settings_of({"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                                           {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    s = get(str(ROOT / "scenarios" / "sweeps" / "cm-heartbeat-kill-primary.yaml"))
    assert len(settings_of(s.spec.sweep)) == 4


def test_a_sweep_refuses_empty_repeated_or_too_many_values():
    base = "summary: x\nschedule:\n  - {fault: crash, target: primary}\n"
    assert "give at least one value" in error_of(base + "sweep: {ttl: []}\n")
    assert "a value appears twice" in error_of(base + "sweep: {ttl: [10, 10]}\n")
    assert "at most 64" in error_of(base + "sweep: {a: [1,2,3,4,5,6,7,8,9], b: [1,2,3,4,5,6,7,8]}\n")


def test_the_sweep_plot_shows_each_settings_rto_and_bound():
    from cmlab.sweep import plot

    rto = {"n": 2, "missing": 0, "min": 9.0, "p50": 10.0, "p95": 11.0, "max": 11.0}
    doc = {"scenario": "kill-primary", "settings": [
        {"parameters": {"ttl": 10}, "rto_bound_s": 17.0, "summary": {"client_rto_s": rto}},
        {"parameters": {"ttl": 20}, "rto_bound_s": 27.0, "summary": {"client_rto_s": {"n": 0, "missing": 2}}}]}
    assert plot(doc)[:4] == b"\x89PNG"


def test_vip_churn_runs_beside_the_next_steps_and_a_heal_stops_it():
    timeline, nemesis, lab, _ = run_text("summary: x\nschedule:\n  - {vip-flap: primary, period: 0.1, duration: 5}\n"
                                         "  - {sleep: 0.01}\n  - heal\n  - {vip-flap: primary, duration: 5}\n")
    assert [kind for kind, _ in nemesis.log] == ["flap", "flap-stopped", "heal", "flap", "flap-stopped"]
    assert nemesis.log[0][1] == f"{lab.primary} every 0.1 s for 5.0 s"
    assert timeline[2]["vip_flap_toggles"] == [3] and timeline[0]["outcome"] == "started"


def test_every_kind_of_step_is_one_entry_that_the_checks_the_composition_and_the_runner_know():
    from cmlab.scenarios.schedule import ScheduleRunner
    from cmlab.scenarios.schema import SETUP_VERBS, STEPS, VERBS

    emitted = {verb for model in STEPS for verb in model.emits}
    assert emitted == set(ScheduleRunner.RUNS), "a verb a step emits has no runner, or a runner no step emits"
    assert set(VERBS) == {key for model in STEPS for key in model.keys}
    assert {"wait", "sleep", "switchover", "primary-in"} <= set(SETUP_VERBS) and "fault" not in SETUP_VERBS
    for model in STEPS:
        from cmlab.scenarios.schema import _Step

        assert model.unroll is not _Step.unroll, f"{model.__name__} does not say how it unrolls"
        assert set(model.durations) <= set(model.model_fields), f"{model.__name__}: a duration that is no field"


def test_scenarios_for_a_topology_say_which_fit_and_why_the_others_do_not():
    from click.testing import CliRunner

    from cmlab import api
    from cmlab.cli import main

    one_az, two_az = api.scenarios_for("quickstart"), api.scenarios_for("two-az")
    assert one_az["kill-primary"] == "" and two_az["split-az-minority-primary"] == ""
    assert "needs 2 AZs" in one_az["split-az-minority-primary"]
    assert "unknown disk 'voting'" in one_az["voting-disk-detached"]
    assert "needs a lab across hosts" in one_az["isolate-primary-host"]
    out = CliRunner().invoke(main, ["scenarios", "--for", "quickstart"], terminal_width=200).output
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("split-az-")] == ["does", "does"]


def test_a_step_the_labs_engine_cannot_do_is_refused_when_the_scenario_is_checked():
    plan = load_topology(ROOT / "topologies" / "quickstart.yaml", default_registry())
    sc = loads("name: needs\nsummary: x\nschedule:\n  - switchover: sync-standby\n  - fault: crash\n    target: cascade-upstream\n"
               "  - heal\n", "needs.yaml")
    with pytest.raises(ScenarioError) as err:
        sc.check_against(plan, TIMING, frozenset({"quorum-leader"}))
    text = str(err.value)
    assert "needs.yaml:4:5" in text and "needs a switchover through the manager" in text
    assert "needs a cascade standby" in text
    sc.check_against(plan, TIMING, frozenset({"switchover", "cascade"}))  # an engine that can: no issue


def test_each_engine_says_what_it_can_do_on_a_plan():
    registry = default_registry()
    quick = load_topology(ROOT / "topologies" / "quickstart.yaml", registry)
    cascade = load_topology(ROOT / "topologies" / "opengauss-cascade.yaml", registry)
    assert abilities(registry.get("postgres-patroni"), quick) == {
        "switchover", "quorum-leader", "repair", "diagnostics", "http-readings"}
    assert abilities(registry.get("opengauss-cm"), cascade) == {
        "switchover", "quorum-leader", "cascade", "diagnostics", "events", "snapshot-readings"}
    # cascade only where the plan has cascade standbys
    assert "cascade" not in abilities(registry.get("opengauss-cm"), load_topology(ROOT / "topologies" / "opengauss-1az.yaml", registry))


def test_the_cluster_handle_answers_none_for_what_the_engine_lacks():
    """An engine with no optional ability: the handle's enriching readings say
    "none", a switchover is refused with the engine's name, a repair says it could not."""
    plan = load_topology(ROOT / "topologies" / "quickstart.yaml", default_registry())

    class Bare:
        name = "bare"

        def cascade_standbys(self, plan):
            return []

    cluster = attach(Bare(), plan, None)  # type: ignore[arg-type]
    assert abilities(Bare(), plan) == frozenset()  # type: ignore[arg-type]
    assert (cluster.quorum_leader(), cluster.upstream("pg1"), cluster.diagnostics(), cluster.events()) == (None, None, {}, [])
    assert cluster.snapshot_reader() is None and cluster.leader_reading() is None and cluster.role_reading("pg1") is None
    assert cluster.repair("pg1") is False
    with pytest.raises(EngineError, match="engine bare has no switchover"):
        cluster.switchover("pg2")


def test_a_watch_is_told_each_step_as_it_starts_with_its_deadline():
    from cmlab.progress import RunWatch

    seen = []

    class Recording(RunWatch):
        def start_step(self, text, deadline_s=None):
            seen.append((text, deadline_s))
            super().start_step(text, deadline_s)

    lab = StandInLab()
    scenario = loads("summary: x\nschedule:\n  - {fault: crash, target: primary}\n"
                     "  - {wait: primary-changed, deadline: 1}\n  - {sleep: 0.01}\n  - heal\n", "t.yaml", "t")
    setup, steps, nemesis_seed = scenario.steps(lab.timing, 1, 1)
    watch = Recording()
    watch.start_trial(1, 2)
    events = SimpleNamespace(records=[], append=lambda kind, **f: events.records.append((kind, f)))
    runner = ScheduleRunner(lab, StandInNemesis(lab, lab.primary, nemesis_seed), events, None, lab.primary, watch=watch)
    runner.run(steps)
    assert seen == [("fault crash primary", None), ("wait primary-changed", 1.0), ("sleep", 0.01), ("heal", None)]
    watch.count_writes(lambda: (12, 3))
    assert watch.line().startswith("trial 1/2 · heal · ") and watch.line().endswith("writes 12 acknowledged, 3 failed")
