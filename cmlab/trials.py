"""Running a scenario: one trial, or N trials with statistics and reports.

A trial: wait for a ready cluster, run the scenario's ``setup`` steps (its
starting shape, unmeasured), empty the writers' table, start the probes, run
the ``schedule`` (:class:`~cmlab.scenarios.schedule.ScheduleRunner`: faults,
waits, heals... as the file says), heal whatever is left, wait for a ready
cluster again (bounded by the engine's start deadline), stop the probes, read
what the final primary holds, and save the history, the step timeline and
the metrics. Every random choice is drawn from the run's seed (recorded), so
a run can be replayed.

Results go to ``<results>/<lab>/runs/<UTC time>-<scenario>/`` (see
:func:`cmlab.state.results_dir`): ``scenario.yaml`` (the file as run),
``run.json``, ``trial-NN/history.jsonl``, ``trial-NN/schedule.json``,
``trial-NN/metrics.json``, and the run's reports (:mod:`cmlab.report`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from cmlab.bundle import capture_run
from cmlab.checkers.metrics import TrialMetrics, compute
from cmlab.engines.cluster import abilities
from cmlab.errors import CmlabError, WaitTimeout
from cmlab.events import EventLog
from cmlab.history import History, is_client_writer
from cmlab.probes.probeset import Cadence, ProbeSet
from cmlab.probes.writer import reset_table, stored_writes
from cmlab.progress import RunWatch
from cmlab.report import write_reports
from cmlab.scenarios import Scenario
from cmlab.scenarios.schedule import ScheduleRunner
from cmlab.state import results_dir
from cmlab.topology.schema import Role
from cmlab.wait import wait_for

if TYPE_CHECKING:
    from cmlab.lab import Lab

#: Probing before the fault, seconds (and at least this many VIP acknowledgements).
WARMUP_S = 1.0
WARMUP_ACKS = 10


@dataclass
class Trial:
    index: int
    directory: Path
    history: History
    metrics: TrialMetrics


@dataclass
class Run:
    scenario: Scenario
    lab: str
    engine: str
    directory: Path
    trials: list[Trial] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The seed every random choice of the run is drawn from.
    seed: int = 0

    @property
    def report(self) -> dict[str, Any]:
        """The run's ``report.json`` (what the HTML report shows: promises,
        verdicts, each trial's metrics, the summary)."""
        return json.loads((self.directory / "report.json").read_text())

    @property
    def passed(self) -> bool:
        """Every promise of the scenario kept in every trial (the report's verdict)."""
        return bool(self.report["passed"])


def client_write_counts(clients: list[Any]) -> tuple[int, int]:
    """The clients' writes so far: ``(acknowledged, failed or unknown)``; sent and unanswered yet count in neither."""
    acked = failed = 0
    for writer in clients:
        for w in list(writer.writes):
            if w.acked is not None:
                acked += 1
            elif w.error is not None or w.unknown:
                failed += 1
    return acked, failed


def scenario_cadence(scenario: Scenario, write_ms: float | None = None, fast_ms: float | None = None,
                     role_ms: float | None = None) -> Cadence:
    """The probes' cadence a scenario's ``workload`` asks for, each interval
    (milliseconds) overridden where given (the command line's ``--write-ms`` ...)."""
    w = scenario.spec.workload
    return Cadence((write_ms or w.write_ms) / 1000, (fast_ms or w.fast_ms) / 1000, (role_ms or w.role_ms) / 1000)


def new_run_dir(lab: str, scenario: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = results_dir(lab) / "runs" / f"{stamp}-{scenario}"
    path.mkdir(parents=True)
    return path


def _stored_on(lab: "Lab", node: str, deadline_s: float, events: EventLog, t_end: float) -> set[tuple[str, int]] | None:
    """Every write stored on ``node``, read as soon as it accepts a connection
    (within ``deadline_s`` seconds); None if it never did, with an event at
    ``t_end`` (the trial's end, monotonic seconds) saying why."""
    def read() -> set[tuple[str, int]] | Exception:
        try:
            return stored_writes(lab.dsn(node))
        except psycopg.OperationalError as exc:
            return exc

    try:
        stored, _ = wait_for(read, lambda r: not isinstance(r, Exception), deadline_s, lab.timing.poll_s,
                             f"writes read from {node}")
    except WaitTimeout as exc:
        events.append("trial-writes-unread", t=t_end, node=node, reason=str(exc))
        return None
    assert not isinstance(stored, Exception)
    return stored


def run_trial(lab: "Lab", scenario: Scenario, directory: Path, index: int = 1, cadence: Cadence = Cadence(),
              seed: int = 0, watch: RunWatch | None = None) -> Trial:
    """One trial of ``scenario`` on a running lab; see the module doc.

    :param seed: the run's seed; this trial's random choices are drawn from it and ``index``.
    :param watch: told each step as it starts and where the clients' writes are counted.
    :raises CmlabError: the lab cannot run the scenario, was not ready in
        time, or a step failed (the faults are healed).
    """
    timing = lab.timing
    scenario.check_against(lab.plan, timing, abilities(lab.engine, lab.plan))
    setup, schedule, nemesis_seed = scenario.steps(timing, seed, index)
    directory.mkdir(parents=True, exist_ok=True)
    lab.ensure_ready()
    events = EventLog.of_lab(lab.plan.name)
    nemesis = lab.nemesis(nemesis_seed)
    watch = watch or RunWatch()
    timeline = ScheduleRunner(lab, nemesis, events, watch=watch).run(setup)
    old = lab.wait_ready(timing.start_s).primary
    assert old is not None
    reset_table(lab.dsn(old))
    probes = ProbeSet(lab.plan, lab.engine, lab.runtime, cadence)
    runner = ScheduleRunner(lab, nemesis, events, probes, old, scenario.time_limit_s(timing), cadence.write_interval_s, watch)
    probes.start()
    clients = [w for w in probes.writers if is_client_writer(w.name)]
    watch.start_step("probing before the fault", WARMUP_S)
    watch.count_writes(lambda: client_write_counts(clients))
    final: str | None = None
    quorum_leader: str | None = None
    try:
        wait_for(lambda: sum(len(w.acked()) for w in clients), lambda n: n >= WARMUP_ACKS, 10 + WARMUP_S, 0.05,
                 "acknowledged writes of the clients (through the VIP) before the fault")
        time.sleep(max(0.0, probes.t_start + WARMUP_S - time.monotonic()))  # bounded: at most WARMUP_S
        # Who leads the quorum (etcd; CM: the CMS primary) when the fault comes: losing
        # it with the primary adds an election, which explains spreads between trials.
        quorum_leader = lab.cluster.quorum_leader()
        events.append("trial-start", scenario=scenario.name, trial=index, old_primary=old, seed=seed,
                      quorum_leader=quorum_leader)
        try:
            timeline += runner.run(schedule)
        finally:
            (directory / "schedule.json").write_text(json.dumps(timeline, indent=1, default=str))
        if not runner.faults_applied:
            raise CmlabError(f"scenario {scenario.name}: no fault was applied in trial {index} (a trial is measured "
                             "from its first fault)")
        if schedule[-1].verb != "heal" or nemesis.active():
            nemesis.heal()
        # The writes are judged on the primary the cluster settles on: the one the
        # manager names (a quorum read) and that says it is primary itself.
        try:
            lab.wait_ready(timing.start_s)
        except WaitTimeout as exc:
            events.append("trial-not-ready-after-heal", reason=str(exc))
        try:
            final = lab.settled_primary(timing.failover_s)
        except WaitTimeout as exc:
            events.append("trial-no-primary-after-heal", reason=str(exc))
        time.sleep(WARMUP_S)  # let the probes see the settled cluster; bounded, part of the trial's shape
    finally:
        watch.count_writes(None)
        watch.start_step("measuring: writes stored on the final primary, reports")
        history = probes.stop()
        nemesis.heal()
    t0, t1 = history.meta["probe_window"]
    stored: set[tuple[str, int]] | None = None
    if final:
        stored = _stored_on(lab, final, timing.failover_s, events, t1)
    recorded = events.read() + lab.cluster.events()
    history.events = sorted((e for e in recorded if t0 <= e.get("t", 0) <= t1), key=lambda e: e["t"])
    history.meta.update({
        "scenario": scenario.name, "trial": index, "seed": seed, "lab": lab.plan.name, "engine": lab.plan.engine,
        "old_primary": old, "quorum_leader": quorum_leader, "final_primary": final,
        "database_nodes": [n.name for n in lab.plan.nodes_with(Role.database)],
        "vip_of": {n.name: v.name for n in lab.plan.nodes for v in lab.plan.vips if v.az == n.az},
        **({"stored": sorted(stored)} if stored is not None else {}),
        "timing": timing.__dict__,
    })
    history.save(directory / "history.jsonl")
    metrics = compute(history, stored)
    (directory / "metrics.json").write_text(json.dumps(metrics.to_json(), indent=2))
    return Trial(index, directory, history, metrics)


def run_scenario(lab: "Lab", scenario: Scenario, trials: int = 1, fresh: bool = False,
                 cadence: Cadence | None = None, directory: Path | None = None, seed: int | None = None,
                 on_trial: Callable[[Trial, int], None] | None = None) -> Run:
    """Run ``trials`` trials, on the same lab (default) or on a fresh one each
    time (``fresh``: down, and an ``up --fresh`` that initialises the cluster,
    between trials), and write the reports.

    :param cadence: the probes' cadence; None: the scenario's ``workload``.
    :param seed: the seed of every random choice; None: a random one (recorded in ``run.json``).
    :param on_trial: called with each trial and the number of trials as soon as the trial ends
        (its reports written), to show progress.
    :returns: the run, with every trial's history and metrics.
    :raises ScenarioError: the scenario does not fit the lab (its durations with
        the lab's timing, its targets, its AZs): checked before the run
        directory is made, so a run that cannot start leaves none.
    :raises CmlabError: ``trials`` is under 1, or a trial failed.
    """
    if trials < 1:
        raise CmlabError(f"a run has at least one trial (asked for {trials})")
    scenario.check_against(lab.plan, lab.timing, abilities(lab.engine, lab.plan))
    seed = secrets.randbits(32) if seed is None else seed
    cadence = cadence or scenario_cadence(scenario)
    run = Run(scenario, lab.plan.name, lab.plan.engine, directory or new_run_dir(lab.plan.name, scenario.name),
              parameters=dict(lab.plan.parameters), seed=seed)
    run.directory.mkdir(parents=True, exist_ok=True)
    (run.directory / "scenario.yaml").write_text(scenario.text)
    meta = {"lab": run.lab, "engine": run.engine, "parameters": run.parameters, "seed": run.seed, "trials": trials,
            "cadence_s": [cadence.write_interval_s, cadence.fast_interval_s, cadence.role_interval_s]}
    try:
        # The lab's progress shows the trial, the step and the writes as the run goes.
        with lab.progress.watching() as watch:
            for i in range(1, trials + 1):
                watch.start_trial(i, trials)
                if fresh and i > 1:
                    lab.down()
                    lab.up(fresh=True)
                run.trials.append(run_trial(lab, scenario, run.directory / f"trial-{i:02d}", i, cadence, seed, watch))
                write_reports(run.directory, scenario, [(t.index, t.history, t.metrics) for t in run.trials], meta)
                if on_trial is not None:
                    on_trial(run.trials[-1], trials)
    finally:
        capture_run(lab, run.directory)  # the bundle: above all when a trial failed
    return run
