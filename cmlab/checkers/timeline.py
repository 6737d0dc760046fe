"""The timeline of a trial: what changed and when, on one clock, in words.

:func:`changes` turns the history's samples into change points (a leader
change, a role change, a VIP move, a run of writes that switched from
acknowledged to failed or to another node); :func:`excerpt` prints those in
a time window, relative to the fault, for assertion messages and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmlab.history import History


@dataclass(frozen=True)
class Change:
    t: float  # seconds from the fault
    lane: str  # "event", "leader", "role pg1", "vip", "writes vip:vip-az1"
    what: str


def _t0(h: History) -> float:
    e = h.event("fault-applied")
    return float(e["t"]) if e else 0.0


def changes(h: History) -> list[Change]:
    t0 = _t0(h)
    out: list[Change] = []
    for e in h.events:
        desc = e.get("describe") or e.get("scenario") or ""
        out.append(Change(e["t"] - t0, "event", f"{e['event']} {desc}".strip()))
    last: object = object()
    for t, _, leader in h.leader:
        if leader != last:
            what = "unreadable" if str(leader).startswith("error:") else f"names {leader or 'no primary'}"
            out.append(Change(t - t0, "leader", f"manager {what}"))
            last = leader
    by_node: dict[str, tuple[str, bool]] = {}
    for t, _, r in h.roles:
        key = (r.get("role"), r.get("healthy"))
        if by_node.get(r["node"]) != key:
            out.append(Change(t - t0, f"role {r['node']}", f"{r.get('role')}{'' if r.get('healthy') else ' (unhealthy)'}"
                              + (f", followers {','.join(r['followers'])}" if r.get("followers") else "")))
            by_node[r["node"]] = key
    last_vip: dict[str, list[str]] = {}
    for t, _, holders in h.vips:
        for vip, nodes in holders.items():
            if last_vip.get(vip) != nodes:
                out.append(Change(t - t0, "vip", f"{vip} on {','.join(nodes) or 'no node'}"))
                last_vip[vip] = nodes
    state: dict[str, str] = {}
    for w in h.writes:
        now = f"acked by {w.node}" if w.acked is not None else f"failing ({(w.error or '').split(':')[0]})"
        if state.get(w.writer) != now:
            t = (w.acked if w.acked is not None else w.sent) - t0
            out.append(Change(t, f"writes {w.writer}", f"#{w.seq} {now}"))
            state[w.writer] = now
    return sorted(out, key=lambda c: c.t)


def excerpt(h: History, start_s: float, end_s: float, limit: int = 60) -> str:
    """The change points between ``start_s`` and ``end_s`` seconds from the fault, one per line."""
    rows = [c for c in changes(h) if start_s <= c.t <= end_s]
    lines = [f"  {c.t:+9.3f} s  {c.lane:<24} {c.what}" for c in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more")
    return f"timeline from {start_s:+.1f} s to {end_s:+.1f} s (0 = fault in effect):\n" + "\n".join(lines)
