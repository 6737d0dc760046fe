"""Metrics of one trial, computed from its :class:`~cmlab.history.History` alone.

Definitions (all times in seconds on the monotonic clock; durations are
measured from ``t_fault``, the moment the fault was in effect):

* ``detection_s``: until the manager first stops naming the old primary
  (the leader observer reads none, or another node; a failed reading is
  unknown and does not count).
* ``promotion_s``: until a node other than the old primary first
  acknowledges a write made straight to it (it accepts writes as primary).
* ``vip_s``: until the VIP of the new primary's AZ is held by it alone.
  ``vip_after_promotion_s`` is the VIP's own convergence.
* ``client_rto_s``: the longest time without an acknowledged write through
  any VIP, from the last acknowledgement before the fault to the end of the
  probes (so a second blip after the heal counts too). ``outages`` lists every
  gap longer than ``OUTAGE_GAP_S``.
* ``following_s``: until the new primary reports every other database node
  streaming from it (after a heal, this includes the old primary rejoining).
* ``availability``: per node writer, the share of write attempts
  acknowledged after the fault.
* ``lost_writes``: acknowledged writes missing on the final primary (RPO),
  each listed.
* ``split_brain``: intervals in which two different nodes both acknowledged
  writes as primary; a node's "primary" interval joins its acknowledgements
  that are less than ``SPLIT_BRAIN_JOIN_S`` apart.
* ``duplicate_vip``: intervals in which two nodes held the same VIP.

A metric that did not happen (no failover, so no promotion) is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cmlab.history import History, WriteRec

#: Gaps between VIP acknowledgements longer than this are listed as outages, seconds.
OUTAGE_GAP_S = 0.2
#: Acknowledgements by one node closer than this belong to one primary interval, seconds.
SPLIT_BRAIN_JOIN_S = 1.0


@dataclass
class TrialMetrics:
    scenario: str
    old_primary: str | None
    new_primary: str | None
    failover: bool
    t_fault: float
    t_heal: float | None
    detection_s: float | None
    promotion_s: float | None
    vip_s: float | None
    vip_after_promotion_s: float | None
    client_rto_s: float | None
    following_s: float | None
    first_failed_write_s: float | None
    outages: list[dict[str, float]] = field(default_factory=list)
    availability: dict[str, float] = field(default_factory=dict)
    acked_writes: int = 0
    unknown_writes: int = 0
    lost_writes: list[dict[str, Any]] = field(default_factory=list)
    #: False when the final primary could not be read (no primary after the heal).
    lost_writes_checked: bool = False
    split_brain: list[dict[str, Any]] = field(default_factory=list)
    duplicate_vip: list[dict[str, Any]] = field(default_factory=list)
    resolution_s: float = 0.0
    probe_cpu_percent: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _first(items, pred):
    return next((x for x in items if pred(x)), None)


def _acks(writes: list[WriteRec], prefix: str) -> list[WriteRec]:
    return sorted((w for w in writes if w.writer.startswith(prefix) and w.acked is not None), key=lambda w: w.acked)


def _median_gap(samples: list[tuple[float, float, object]]) -> float:
    """The typical seconds between two readings as taken, which a slow reading
    stretches past the cadence asked for (CM: one cm_ctl query takes ~0.75 s)."""
    times = [t for t, _, _ in samples]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return round(gaps[len(gaps) // 2], 3) if gaps else 0.0


def compute(h: History, stored: set[tuple[str, int]] | None = None) -> TrialMetrics:
    """The metrics of a trial.

    :param stored: ``(writer, seq)`` found on the final primary; when None,
        read from ``h.meta["stored"]`` (a saved trial), else lost writes are not checked.
    """
    applied = h.event("fault-applied")
    if applied is None:
        raise ValueError("the history has no fault-applied event")
    t_fault = float(applied["t"])
    healed = h.event("healed")
    t_heal = float(healed["t"]) if healed else None
    old = h.meta.get("old_primary")
    end = h.meta.get("probe_window", [t_fault, t_fault])[1]

    # The new primary: the first node other than the old one to acknowledge a write straight to it.
    direct = [w for w in _acks(h.writes, "node:") if w.acked >= t_fault and w.node and w.node != old]
    promoted = direct[0] if direct else None
    new = promoted.node if promoted else h.meta.get("final_primary") or old
    failover = promoted is not None

    detection = _first(h.leader, lambda s: s[0] >= t_fault and s[2] != old and not str(s[2]).startswith("error:"))
    vip_name = h.meta.get("vip_of", {}).get(new or "")
    vip_moved = None
    if vip_name and failover:
        vip_moved = _first(h.vips, lambda s: s[0] >= promoted.acked - 1e-9 and s[2].get(vip_name) == [new])

    vip_acks = _acks(h.writes, "vip:")
    before = [w.acked for w in vip_acks if w.acked <= t_fault]
    times = ([before[-1]] if before else []) + [w.acked for w in vip_acks if w.acked > t_fault] + [end]
    gaps = [(a, b) for a, b in zip(times, times[1:])]
    rto = max((b - a for a, b in gaps), default=None) if before else None
    outages = [{"start": a - t_fault, "end": b - t_fault, "seconds": b - a} for a, b in gaps if b - a > OUTAGE_GAP_S]

    first_failed = _first(h.writes, lambda w: w.writer.startswith("vip:") and w.sent >= t_fault and w.acked is None)

    others = set(h.meta.get("database_nodes", [])) - {new}
    following = _first(h.roles, lambda r: r[0] >= t_fault and r[2].get("node") == new
                       and r[2].get("role") == "primary" and others <= set(r[2].get("followers", [])))

    availability = {}
    for writer in sorted({w.writer for w in h.writes if w.writer.startswith("node:")}):
        attempts = [w for w in h.writes if w.writer == writer and w.sent >= t_fault]
        if attempts:
            availability[writer.removeprefix("node:")] = round(sum(w.acked is not None for w in attempts) / len(attempts), 4)

    if stored is None and "stored" in h.meta:
        stored = {(w, s) for w, s in h.meta["stored"]}
    acked = [w for w in h.writes if w.acked is not None]
    lost = []
    if stored is not None:
        lost = [{"writer": w.writer, "seq": w.seq, "acked_s": w.acked - t_fault, "node": w.node}
                for w in acked if (w.writer, w.seq) not in stored]

    cadence = h.meta.get("cadence", {})
    resolution = max(cadence.get("write_s", 0.0), cadence.get("fast_s", 0.0), cadence.get("leader_s", 0.0),
                     _median_gap(h.leader))
    return TrialMetrics(
        scenario=str(h.meta.get("scenario", "")), old_primary=old, new_primary=new, failover=failover,
        t_fault=t_fault, t_heal=t_heal,
        detection_s=detection[0] - t_fault if detection else None,
        promotion_s=promoted.acked - t_fault if promoted else None,
        vip_s=vip_moved[0] - t_fault if vip_moved else None,
        vip_after_promotion_s=vip_moved[0] - promoted.acked if vip_moved and promoted else None,
        client_rto_s=rto, following_s=following[0] - t_fault if following else None,
        first_failed_write_s=first_failed.sent - t_fault if first_failed else None,
        outages=outages, availability=availability,
        acked_writes=len(acked), unknown_writes=sum(w.unknown for w in h.writes),
        lost_writes=lost, lost_writes_checked=stored is not None, split_brain=split_brain(h.writes, t_fault), duplicate_vip=duplicate_vip(h, t_fault),
        resolution_s=resolution, probe_cpu_percent=h.meta.get("probe_cpu_percent_of_one_core"),
    )


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
