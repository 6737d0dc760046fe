"""Metrics of one trial, computed from its :class:`~cmlab.history.History` alone.

Every metric is one entry of :data:`METRICS` (name, unit, definition, and the
function that computes it); ``report.json``, ``junit.xml``, the HTML report,
the CLI's table, the timeline plot and ``docs/report-schema.md`` iterate over
that list, so a new metric is one entry here and nothing else.

All times are seconds on the host's monotonic clock; durations are measured
from ``t_fault``, the moment the fault was in effect (its apply call
returned). A metric that did not happen (no failover, so no promotion) is None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cmlab.history import CLIENT_WRITER_PREFIXES, History, WriteRec, is_client_writer

#: Gaps between VIP acknowledgements longer than this are listed as outages, seconds.
OUTAGE_GAP_S = 0.2
#: Acknowledgements by one node closer than this belong to one primary interval, seconds.
SPLIT_BRAIN_JOIN_S = 1.0
#: The probe loop late by more than this many of the trial's resolution (and at least
#: STARVED_FLOOR_S) lost ticks in a row: the probes saw nothing for that long. Ticks 10-50 ms
#: late happen on a busy 2-core host during any failover (docker kill, a promotion) and move a
#: timing by that much; they are recorded (probe_late_max_s), not flagged.
STARVED_TICKS = 4
STARVED_FLOOR_S = 0.1
#: A fault in effect later than this after its call was held up by the host, seconds:
#: applying one takes 0.05 to 0.25 s here (ci/bench_faults.py), so 1 s is four times the slowest.
FAULT_EFFECT_BOUND_S = 1.0


def _first(items, pred):
    return next((x for x in items if pred(x)), None)


def _acks(writes: list[WriteRec], prefix: str | tuple[str, ...]) -> list[WriteRec]:
    return sorted((w for w in writes if w.writer.startswith(prefix) and w.acked is not None), key=lambda w: w.acked)


def _median_gap(samples: list[tuple[float, float, object]]) -> float:
    """The typical seconds between two readings as taken, which a slow reading
    stretches past the cadence asked for (CM: one cm_ctl query takes ~0.75 s)."""
    times = [t for t, _, _ in samples]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return round(gaps[len(gaps) // 2], 3) if gaps else 0.0


class TrialFacts:
    """What the metrics of one trial are computed from: the history, the
    writes found on the final primary, and the intermediate findings several
    metrics share (each computed once).

    :param stored: ``(writer, seq)`` found on the final primary; when None,
        read from ``h.meta["stored"]`` (a saved trial), else lost writes are not checked.
    :raises ValueError: the history has no ``fault-applied`` event.
    """

    def __init__(self, h: History, stored: set[tuple[str, int]] | None = None) -> None:
        applied = h.event("fault-applied")
        if applied is None:
            raise ValueError("the history has no fault-applied event")
        self.h = h
        self.t_fault = float(applied["t"])
        healed = h.event("healed")
        self.t_heal = float(healed["t"]) if healed else None
        self.old: str | None = h.meta.get("old_primary")
        self.end = float(h.meta.get("probe_window", [self.t_fault, self.t_fault])[1])
        if stored is None and "stored" in h.meta:
            stored = {(w, s) for w, s in h.meta["stored"]}
        self.stored = stored

    def since_fault(self, t: float | None) -> float | None:
        return None if t is None else t - self.t_fault

    @cached_property
    def promoted(self) -> WriteRec | None:
        """The first write made straight to a node other than the old primary
        and acknowledged after the fault: that node accepts writes as primary."""
        return _first(_acks(self.h.writes, "node:"), lambda w: w.acked >= self.t_fault and w.node and w.node != self.old)

    @property
    def failover(self) -> bool:
        return self.promoted is not None

    @cached_property
    def new(self) -> str | None:
        return self.promoted.node if self.promoted else self.h.meta.get("final_primary") or self.old

    @cached_property
    def vip_arrived(self) -> float | None:
        """When the VIP of the new primary's AZ was first seen on it alone
        after the fault, whatever the order with its first acknowledged write."""
        vip = self.h.meta.get("vip_of", {}).get(self.new or "")
        if not (vip and self.failover):
            return None
        sample = _first(self.h.vips, lambda s: s[0] >= self.t_fault and s[2].get(vip) == [self.new])
        return sample[0] if sample else None

    @cached_property
    def vip_gaps(self) -> list[tuple[float, float]] | None:
        """Consecutive VIP acknowledgements from the last one before the fault
        to the end of the probes; None with no acknowledgement before the fault."""
        acks = _acks(self.h.writes, CLIENT_WRITER_PREFIXES)
        before = [w.acked for w in acks if w.acked <= self.t_fault]
        if not before:
            return None
        times = [before[-1]] + [w.acked for w in acks if w.acked > self.t_fault] + [self.end]
        return list(zip(times, times[1:]))

    @cached_property
    def acked(self) -> list[WriteRec]:
        return [w for w in self.h.writes if w.acked is not None]


def _detection(f: TrialFacts) -> float | None:
    s = _first(f.h.leader, lambda s: s[0] >= f.t_fault and s[2] != f.old and not str(s[2]).startswith("error:"))
    return f.since_fault(s[0]) if s else None


def _client_rto(f: TrialFacts) -> float | None:
    return max((b - a for a, b in f.vip_gaps), default=None) if f.vip_gaps is not None else None


def _outages(f: TrialFacts) -> list[dict[str, float]]:
    return [{"start": a - f.t_fault, "end": b - f.t_fault, "seconds": b - a}
            for a, b in f.vip_gaps or [] if b - a > OUTAGE_GAP_S]


def _following(f: TrialFacts) -> float | None:
    others = set(f.h.meta.get("database_nodes", [])) - {f.new}
    r = _first(f.h.roles, lambda r: r[0] >= f.t_fault and r[2].get("node") == f.new
               and r[2].get("role") == "primary" and others <= set(r[2].get("followers", [])))
    return f.since_fault(r[0]) if r else None


def _first_failed_write(f: TrialFacts) -> float | None:
    w = _first(f.h.writes, lambda w: is_client_writer(w.writer) and w.sent >= f.t_fault and w.acked is None)
    return f.since_fault(w.sent) if w else None


def _availability(f: TrialFacts) -> dict[str, float]:
    out = {}
    for writer in sorted({w.writer for w in f.h.writes if w.writer.startswith("node:")}):
        attempts = [w for w in f.h.writes if w.writer == writer and w.sent >= f.t_fault]
        if attempts:
            out[writer.removeprefix("node:")] = round(sum(w.acked is not None for w in attempts) / len(attempts), 4)
    return out


def _lost_writes(f: TrialFacts) -> list[dict[str, Any]]:
    if f.stored is None:
        return []
    return [{"writer": w.writer, "seq": w.seq, "acked_s": w.acked - f.t_fault, "node": w.node}
            for w in f.acked if (w.writer, w.seq) not in f.stored]


def _probe_late(f: TrialFacts) -> tuple[float, float] | None:
    """``(time, seconds late)`` of the probe loop's latest tick in the trial, None if none was late."""
    ticks = (f.h.meta.get("harness") or {}).get("late_ticks") or []
    return max(((float(t), float(late)) for t, late in ticks), key=lambda x: x[1], default=None)


def _fault_delay(f: TrialFacts) -> tuple[float, float] | None:
    """``(time of the call, seconds from the call to the effect)`` of the trial's slowest fault."""
    delays = [(float(e["t_call"]), float(e["t"]) - float(e["t_call"])) for e in f.h.events
              if e.get("event") == "fault-applied" and e.get("t_call") is not None]
    return max(delays, key=lambda x: x[1], default=None)


def _starved(f: TrialFacts) -> list[dict[str, Any]]:
    """Where the host distorted the trial beyond its resolution (see the metric)."""
    out = []
    late = _probe_late(f)
    bound = max(STARVED_TICKS * _resolution(f), STARVED_FLOOR_S)
    if late and late[1] > bound:
        out.append({"what": "probe loop", "seconds": round(late[1], 3), "at_s": round(late[0] - f.t_fault, 3),
                    "bound_s": bound,
                    "says": f"probe loop {1000 * late[1]:.0f} ms late at {late[0] - f.t_fault:+.1f} s"})
    delay = _fault_delay(f)
    if delay and delay[1] > FAULT_EFFECT_BOUND_S:
        out.append({"what": "fault", "seconds": round(delay[1], 3), "at_s": round(delay[0] - f.t_fault, 3),
                    "bound_s": FAULT_EFFECT_BOUND_S,
                    "says": f"fault applied {delay[1]:.1f} s after its call"})
    return out


def _resolution(f: TrialFacts) -> float:
    cadence = f.h.meta.get("cadence", {})
    return max(cadence.get("write_s", 0.0), cadence.get("fast_s", 0.0), cadence.get("leader_s", 0.0),
               _median_gap(f.h.leader))


@dataclass(frozen=True)
class Metric:
    """One metric of a trial.

    :param name: its key in ``report.json``'s ``trials[]``, ``metrics.json``
        and ``junit.xml``; a duration ends in ``_s``.
    :param unit: ``s`` (seconds from the fault), ``monotonic s`` (a time on
        the monotonic clock), ``node``, ``bool``, ``count``, ``ratio``, or
        ``list`` (of intervals or writes: JUnit and the tables show its length).
    :param definition: what it measures, one sentence for the docs.
    :param value: computes it from a trial's facts.
    :param summarised: summarised over trials (min / p50 / p95 / max) in the
        report's ``summary`` and the CLI's table.
    :param column: its header in the HTML report's trial table (None: not shown).
    :param total: its key in the report's ``totals`` (its sum over trials; a
        list adds its length, a bool counts the trials where it holds).
    :param marker: its label as a vertical line on the timeline plot.
    """

    name: str
    unit: str
    definition: str
    value: Callable[[TrialFacts], Any]
    summarised: bool = False
    column: str | None = None
    total: str | None = None
    marker: str | None = None

    def brief(self, v: Any) -> Any:
        """The value as a table, a JUnit property or a total shows it: a list by its length."""
        return len(v) if self.unit == "list" and v is not None else v


METRICS: list[Metric] = [
    Metric("scenario", "name", "the scenario the trial ran", lambda f: str(f.h.meta.get("scenario", ""))),
    Metric("old_primary", "node", "the primary when the fault was applied", lambda f: f.old),
    Metric("quorum_leader", "node", "the quorum leader (the etcd leader; CM: the CMS primary) when the trial "
           "started; on the old primary's node, the fault costs an election too",
           lambda f: f.h.meta.get("quorum_leader")),
    Metric("new_primary", "node", "the first other node to acknowledge a write made straight to it after the "
           "fault; without one, the final primary", lambda f: f.new),
    Metric("failover", "bool", "whether another node became primary (acknowledged a write made straight to it)",
           lambda f: f.failover, total="failovers"),
    Metric("t_fault", "monotonic s", "when the fault was in effect (its apply call returned)", lambda f: f.t_fault),
    Metric("t_heal", "monotonic s", "when the heal was in effect", lambda f: f.t_heal),
    Metric("detection_s", "s", "until the manager first stops naming the old primary (the leader observer reads "
           "none, or another node; a failed reading does not count; CM: the CMS view)", _detection,
           summarised=True, column="detection", marker="detection"),
    Metric("promotion_s", "s", "until a node other than the old primary first acknowledges a write made straight "
           "to it", lambda f: f.since_fault(f.promoted.acked) if f.promoted else None,
           summarised=True, column="promotion", marker="promotion"),
    Metric("vip_s", "s", "until the VIP of the new primary's AZ is first seen on it alone after the fault, "
           "whatever its order with the first acknowledged write", lambda f: f.since_fault(f.vip_arrived),
           summarised=True, column="VIP", marker="VIP moved"),
    Metric("vip_after_promotion_s", "s", "the VIP's arrival less the promotion: the VIP's own convergence; "
           "negative when the VIP manager moved it before the new primary acknowledged its first write",
           lambda f: f.vip_arrived - f.promoted.acked if f.vip_arrived is not None and f.promoted else None,
           summarised=True),
    Metric("client_rto_s", "s", "the longest time without an acknowledged write of a client (through any VIP; "
           "in a lab without VIPs, of the client that seeks the primary itself), from the last "
           "acknowledgement before the fault to the end of the probes (a second blip after the heal counts too)",
           _client_rto, summarised=True, column="RTO"),
    Metric("following_s", "s", "until the new primary reports every other database node streaming from it "
           "(after a heal, this includes the old primary rejoining)", _following, summarised=True, column="following"),
    Metric("first_failed_write_s", "s", "the first failed write of a client (through a VIP, or seeking the primary) after the fault", _first_failed_write),
    Metric("outages", "list", f"every gap of over {OUTAGE_GAP_S} s between a client's acknowledgements (VIP or seeking): `start`, `end`, "
           "`seconds`", _outages),
    Metric("availability", "ratio", "per node: the share of the writes made straight to it after the fault that "
           "were acknowledged", _availability),
    Metric("acked_writes", "count", "acknowledged writes", lambda f: len(f.acked)),
    Metric("unknown_writes", "count", "writes that may or may not have committed (the connection broke after "
           "the request)", lambda f: sum(w.unknown for w in f.h.writes), total="unknown_writes"),
    Metric("lost_writes", "list", "acknowledged writes missing on the final primary (RPO): `writer`, `seq`, "
           "`acked_s`, `node`", _lost_writes, column="lost", total="lost_writes"),
    Metric("lost_writes_checked", "bool", "false when the final primary could not be read (no primary after "
           "the heal), so lost writes were not checked", lambda f: f.stored is not None),
    Metric("split_brain", "list", "intervals in which two nodes both acknowledged writes as primary (a node's "
           f"acknowledgements less than {SPLIT_BRAIN_JOIN_S} s apart form one interval): `nodes`, `start`, `end`, "
           "`seconds`", lambda f: split_brain(f.h.writes, f.t_fault), column="split brain", total="split_brain_intervals"),
    Metric("duplicate_vip", "list", "intervals in which a VIP was on two nodes: `vip`, `nodes`, `start`, `end`, "
           "`seconds`", lambda f: duplicate_vip(f.h, f.t_fault), column="dup VIP", total="duplicate_vip_intervals"),
    Metric("resolution_s", "s", "the measurement's resolution: the largest of the write cadence, the fast "
           "observers' cadence, the leader's, and the median gap between leader readings as taken", _resolution),
    Metric("probe_cpu_percent", "percent", "the probes' CPU, percent of one core",
           lambda f: f.h.meta.get("probe_cpu_percent_of_one_core")),
    Metric("probe_late_max_s", "s", "the probe loop's latest tick, seconds after it was due: how long the host "
           "kept the harness from measuring (0: no tick over 10 ms late)",
           lambda f: round(late[1], 4) if (late := _probe_late(f)) else 0.0),
    Metric("fault_effect_s", "s", "the slowest fault of the trial, from its apply call to its effect "
           "(durations are measured from the effect)", lambda f: round(d[1], 4) if (d := _fault_delay(f)) else None),
    Metric("host_load", "load", "the host's 1-minute load average and CPU pressure (percent of the last 10 s in "
           "which a task waited for a CPU; PSI, where the kernel has it) at the start and the end of the probes",
           lambda f: {k: (f.h.meta.get("harness") or {}).get(f"host_at_{k}") for k in ("start", "end")}),
    Metric("starved", "list", "where the host distorted the trial beyond its resolution: the probe loop late by "
           f"more than {STARVED_TICKS} times the resolution (at least {STARVED_FLOOR_S:g} s: that many ticks lost in "
           f"a row), or a fault in effect over {FAULT_EFFECT_BOUND_S:g} s after its call "
           "(`what`, `seconds`, `at_s`, `bound_s`, `says`); the scenario's `on-starved` says whether such a trial "
           "is reported, fails or is discarded", _starved, column="starved", total="starved_findings"),
]

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
#: Metrics summarised over trials, in report order (seconds).
SUMMARISED: tuple[str, ...] = tuple(m.name for m in METRICS if m.summarised)


class TrialMetrics:
    """The metrics of one trial, by name (``m.client_rto_s``), in
    :data:`METRICS` order; see each entry for its definition and unit."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrialMetrics) and other._values == self._values

    def __repr__(self) -> str:
        return f"TrialMetrics({self._values!r})"

    def to_json(self) -> dict[str, Any]:
        return dict(self._values)


def compute(h: History, stored: set[tuple[str, int]] | None = None) -> TrialMetrics:
    """The metrics of a trial (every entry of :data:`METRICS`).

    :param stored: ``(writer, seq)`` found on the final primary; when None,
        read from ``h.meta["stored"]`` (a saved trial), else lost writes are not checked.
    :raises ValueError: the history has no ``fault-applied`` event.
    """
    facts = TrialFacts(h, stored)
    return TrialMetrics({m.name: m.value(facts) for m in METRICS})


def markdown_table() -> str:
    """The metrics as the Markdown table of ``docs/report-schema.md``."""
    rows = ["| field | unit | meaning |", "|---|---|---|"]
    rows += [f"| `{m.name}` | {m.unit} | {m.definition} |" for m in METRICS]
    return "\n".join(rows)


def _intervals(times: list[float], join_s: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= join_s:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def split_brain(writes: list[WriteRec], t0: float = 0.0, join_s: float = SPLIT_BRAIN_JOIN_S) -> list[dict[str, Any]]:
    """Intervals in which two nodes both acknowledged writes (see the module doc)."""
    by_node: dict[str, list[float]] = {}
    for w in writes:
        if w.acked is not None and w.node:
            by_node.setdefault(w.node, []).append(w.acked)
    spans = {n: _intervals(ts, join_s) for n, ts in by_node.items()}
    nodes = sorted(spans)
    out = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            for sa, ea in spans[a]:
                for sb, eb in spans[b]:
                    start, end = max(sa, sb), min(ea, eb)
                    if start <= end:
                        out.append({"nodes": [a, b], "start": start - t0, "end": end - t0, "seconds": end - start})
    return out


def duplicate_vip(h: History, t0: float = 0.0) -> list[dict[str, Any]]:
    """Intervals in which one VIP was held by more than one node: from the
    first sample showing it to the first sample without it (samples are
    taken at every change), or to the last sample if it lasted to the end."""
    out: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for t, _, holders in h.vips:
        for vip, nodes in holders.items():
            if len(nodes) > 1:
                run = open_.setdefault(vip, {"vip": vip, "nodes": sorted(nodes), "start": t - t0, "end": t - t0})
                run["end"] = t - t0
            elif vip in open_:
                run = open_.pop(vip)
                run["end"] = t - t0
                out.append(run)
    out += open_.values()
    for run in out:
        run["seconds"] = run["end"] - run["start"]
    return out
