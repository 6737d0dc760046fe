"""Running a scenario: one trial, or N trials with statistics and reports.

A trial: wait for a ready cluster (and put it in the scenario's shape), empty
the writers' table, start the probes, apply the fault, wait until writes
through a VIP flow again (bounded by the scenario's hold time; a fault the
manager may ride out stays at least its minimum hold), heal, wait
for a ready cluster again (bounded by the engine's start deadline), stop the
probes, read what the final primary holds, and save the history and metrics.

Results go to ``<results>/<lab>/runs/<UTC time>-<scenario>/`` (see
:func:`cmlab.state.results_dir`): ``trial-NN/history.jsonl``,
``trial-NN/metrics.json``, and the run's reports (:mod:`cmlab.report`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from cmlab.checkers.metrics import TrialMetrics, compute
from cmlab.errors import CmlabError, WaitTimeout
from cmlab.events import EventLog
from cmlab.history import History
from cmlab.probes.probeset import Cadence, ProbeSet
from cmlab.probes.writer import reset_table, stored_writes
from cmlab.scenarios import Scenario
from cmlab.state import results_dir
from cmlab.topology.schema import Role
from cmlab.wait import wait_for

if TYPE_CHECKING:
    from cmlab.api import Lab

#: Writes through a VIP must flow for this long, seconds, to count as recovered.
RECOVERED_FLOW_S = 0.5
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


def new_run_dir(lab: str, scenario: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = results_dir(lab) / "runs" / f"{stamp}-{scenario}"
    path.mkdir(parents=True)
    return path


def _flowing(probes: ProbeSet, since: float) -> bool:
    """Writes through some VIP have been acknowledged for RECOVERED_FLOW_S since ``since``."""
    now = time.monotonic()
    for w in probes.writers:
        if not w.name.startswith("vip:"):
            continue
        recent = [x for x in w.writes[-200:] if x.sent >= max(since, now - RECOVERED_FLOW_S)]
        acked_after = any(x.acked is not None and x.acked > since for x in recent)
        if acked_after and recent and all(x.acked is not None for x in recent) and now - since >= RECOVERED_FLOW_S:
            return True
    return False


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


def run_trial(lab: "Lab", scenario: Scenario, directory: Path, index: int = 1, cadence: Cadence = Cadence()) -> Trial:
    """One trial of ``scenario`` on a running lab; see the module doc.

    :raises CmlabError: the lab cannot run the scenario, or was not ready in time.
    """
    if len(lab.plan.azs) < scenario.min_azs:
        raise CmlabError(f"scenario {scenario.name} needs {scenario.min_azs} AZs; lab {lab.plan.name} has {len(lab.plan.azs)}")
    if not lab.plan.vips:
        raise CmlabError(f"scenario {scenario.name} measures writes through a VIP; lab {lab.plan.name} has none")
    timing = lab.timing
    directory.mkdir(parents=True, exist_ok=True)
    lab.ensure_ready()
    if scenario.prepare:
        scenario.prepare(lab)
    old = lab.wait_ready(timing.start_s).primary
    assert old is not None
    reset_table(lab.dsn(old))
    events = EventLog.of_lab(lab.plan.name)
    probes = ProbeSet(lab.plan, lab.engine, lab.runtime, cadence)
    nemesis = lab.nemesis()
    probes.start()
    final: str | None = None
    try:
        vip_writers = [w for w in probes.writers if w.name.startswith("vip:")]
        wait_for(lambda: sum(len(w.acked()) for w in vip_writers), lambda n: n >= WARMUP_ACKS, 10 + WARMUP_S, 0.05,
                 "acknowledged writes through the VIP before the fault")
        time.sleep(max(0.0, probes.t_start + WARMUP_S - time.monotonic()))  # bounded: at most WARMUP_S
        events.append("trial-start", scenario=scenario.name, trial=index, old_primary=old)
        applied = nemesis.apply(scenario.fault(nemesis))
        min_hold_s = scenario.min_hold_s(timing)
        try:
            wait_for(lambda: _flowing(probes, applied.t_effect) and time.monotonic() - applied.t_effect >= min_hold_s, bool,
                     scenario.hold_s(timing), cadence.write_interval_s * 5, "writes flowing through a VIP again")
        except WaitTimeout:
            pass  # measured as it is: the metrics say how long writes stopped
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
        history = probes.stop()
        nemesis.heal()
    t0, t1 = history.meta["probe_window"]
    stored: set[tuple[str, int]] | None = None
    if final:
        stored = _stored_on(lab, final, timing.failover_s, events, t1)
    recorded = events.read() + lab.engine.collect_events(lab.plan, lab.runtime.access(lab.plan))
    history.events = sorted((e for e in recorded if t0 <= e.get("t", 0) <= t1), key=lambda e: e["t"])
    history.meta.update({
        "scenario": scenario.name, "trial": index, "lab": lab.plan.name, "engine": lab.plan.engine,
        "old_primary": old, "final_primary": final,
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
                 cadence: Cadence = Cadence(), directory: Path | None = None) -> Run:
    """Run ``trials`` trials, on the same lab (default) or on a fresh one each
    time (``fresh``: down and up between trials), and write the reports.

    :returns: the run, with every trial's history and metrics.
    """
    from cmlab.report import write_reports

    run = Run(scenario, lab.plan.name, lab.plan.engine, directory or new_run_dir(lab.plan.name, scenario.name),
              parameters=dict(lab.plan.parameters))
    for i in range(1, trials + 1):
        if fresh and i > 1:
            lab.down()
            lab.up()
        run.trials.append(run_trial(lab, scenario, run.directory / f"trial-{i:02d}", i, cadence))
        write_reports(run)
    return run
