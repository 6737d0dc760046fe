"""The timeline plot of one trial (as Jepsen's plots): writes, roles, the
manager's leader and the VIP holders on one time axis, seconds from the
fault, with the fault window shaded and the measured moments marked."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from cmlab.checkers.metrics import METRICS, TrialMetrics  # noqa: E402
from cmlab.history import History  # noqa: E402

ROLE_COLOURS = {"primary": "#d62728", "sync standby": "#1f77b4", "standby": "#9ecae1", "cascade standby": "#c6dbef",
                "quorum": "#bcbd22", "arbiter": "#bcbd22", "unknown": "#bbbbbb", "down": "#333333"}
#: Marks and fills that are not a node's or a role's colour; each has its legend entry.
#: Red is the primary's alone: a failed write is grey (writes straight to a standby
#: fail all the time, and must not paint its lane "primary").
FAILED_WRITE = "#7f7f7f"
UNKNOWN_WRITE = "#17becf"
NO_LEADER = "#eeeeee"  # the manager names none
DUPLICATE_VIP = "#000000"  # a VIP on two nodes at once


def _node_colours(h: History) -> dict[str, str]:
    nodes = sorted({r[2]["node"] for r in h.roles} | {w.node for w in h.writes if w.node})
    cmap = plt.get_cmap("Dark2")  # apart from the role colours (reds and blues)
    return {n: matplotlib.colors.to_hex(cmap(i % 8)) for i, n in enumerate(nodes)}


def _segments(samples: list[tuple[float, str]], end: float) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    for i, (t, v) in enumerate(samples):
        t_next = samples[i + 1][0] if i + 1 < len(samples) else end
        if out and out[-1][2] == v and abs(out[-1][1] - t) < 1e-9:
            out[-1] = (out[-1][0], t_next, v)
        else:
            out.append((t, t_next, v))
    return out


def draw(h: History, m: TrialMetrics, fmt: str = "png") -> bytes:
    """The trial's timeline as PNG or SVG bytes."""
    t0 = m.t_fault
    start, end = (x - t0 for x in h.meta.get("probe_window", [t0 - 1, t0 + 30]))
    colours = _node_colours(h)
    writers = sorted({w.writer for w in h.writes})
    nodes = sorted({r[2]["node"] for r in h.roles})
    vips = sorted({v for _, _, holders in h.vips for v in holders})
    lanes = [*(f"writes {w}" for w in writers), *(f"role {n}" for n in nodes), "leader", *(f"VIP {v}" for v in vips)]
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(lanes) + 1.8), dpi=100)
    y = {lane: len(lanes) - i for i, lane in enumerate(lanes)}

    for w in writers:
        acks = [(x.acked - t0, x.node) for x in h.writes if x.writer == w and x.acked is not None]
        fails = [x.sent - t0 for x in h.writes if x.writer == w and x.acked is None and not x.unknown]
        unknown = [x.sent - t0 for x in h.writes if x.writer == w and x.acked is None and x.unknown]
        ax.scatter([a for a, _ in acks], [y[f"writes {w}"]] * len(acks), marker="|", s=60,
                   c=[colours.get(n or "", "#2ca02c") for _, n in acks], linewidths=0.8)
        ax.scatter(fails, [y[f"writes {w}"]] * len(fails), marker="x", s=12, c=FAILED_WRITE, linewidths=0.6)
        ax.scatter(unknown, [y[f"writes {w}"]] * len(unknown), marker="d", s=14, c=UNKNOWN_WRITE, linewidths=0)
    for n in nodes:
        samples = [(t - t0, r["role"]) for t, _, r in h.roles if r["node"] == n]
        for a, b, role in _segments(samples, end):
            ax.barh(y[f"role {n}"], b - a, left=a, height=0.6, color=ROLE_COLOURS.get(role, "#bbbbbb"))
    for a, b, leader in _segments([(t - t0, str(v)) for t, _, v in h.leader], end):
        if leader.startswith("error:"):  # unreadable: hatched, not a colour
            ax.barh(y["leader"], b - a, left=a, height=0.6, color="#ffffff", edgecolor="#999999", hatch="///", linewidth=0)
        else:
            ax.barh(y["leader"], b - a, left=a, height=0.6, color=colours.get(leader, NO_LEADER))
    for v in vips:
        samples = [(t - t0, ",".join(holders.get(v, []))) for t, _, holders in h.vips]
        for a, b, who in _segments(samples, end):
            colour = DUPLICATE_VIP if "," in who else colours.get(who, NO_LEADER) if who else NO_LEADER
            ax.barh(y[f"VIP {v}"], b - a, left=a, height=0.6, color=colour)

    applied = h.event("fault-applied") or {}
    call = float(applied.get("t_call", t0)) - t0
    ax.axvspan(call, (m.t_heal - t0) if m.t_heal else end, color="#ff7f0e", alpha=0.12, label="fault (call to heal)")
    marked = [metric for metric in METRICS if metric.marker]
    for metric, style in zip(marked, (":", "--", "-.", (0, (1, 3)), (0, (5, 1)))):
        value, label = getattr(m, metric.name), metric.marker
        if value is not None:
            ax.axvline(value, color="#444444", linestyle=style, linewidth=1, label=f"{label} {value:.2f} s")
    ax.set_yticks(list(y.values()), list(y.keys()), fontsize=8)
    ax.set_xlim(start, end)
    ax.set_xlabel("seconds from the fault in effect")
    rto = f"{m.client_rto_s:.2f} s" if m.client_rto_s is not None else "n/a"
    ax.set_title(f"{m.scenario}: {m.old_primary} -> {m.new_primary}, client RTO {rto}, "
                 f"lost {len(m.lost_writes)}, split brain {len(m.split_brain)}", fontsize=10)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color=c, marker="|", linestyle="", markersize=9, label=f"{n}: acknowledged by it, leader, VIP holder")
                for n, c in colours.items()]
    handles += [Line2D([], [], color=FAILED_WRITE, marker="x", linestyle="", markersize=5, label="write failed (refused or no answer)"),
                Line2D([], [], color=UNKNOWN_WRITE, marker="d", linestyle="", markersize=5, label="write outcome unknown"),
                Patch(color=NO_LEADER, label="leader / VIP: none"),
                Patch(facecolor="#ffffff", edgecolor="#999999", hatch="///", label="leader unreadable"),
                Patch(color=DUPLICATE_VIP, label="VIP on two nodes")]
    handles += [Patch(color=c, label=f"role: {r}") for r, c in ROLE_COLOURS.items() if r in {x[2]["role"] for x in h.roles}]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf.getvalue()


def save_png(h: History, m: TrialMetrics, path: Path) -> None:
    path.write_bytes(draw(h, m, "png"))
