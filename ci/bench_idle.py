#!/usr/bin/env python3
"""What an idle lab costs the host; prints numbers, asserts nothing.

    .venv/bin/python ci/bench_idle.py [--topology topologies/quickstart.yaml] [--seconds 60] [--set KEY=VALUE ...]

Brings the lab up (a copy named bench-idle, subnets allocated), waits until it
is ready and then --settle seconds more, and measures over --seconds seconds,
as % of one core:

* each container, from Docker's own CPU accounting (its cgroup);
* inside each node, the processes by name (from /proc, host PIDs), and what
  processes that came and went in the window cost (the container's total
  less its lasting processes: a manager's periodic `ps`, `cm_ctl` checks...);
* the host's processes that serve the containers: the storage driver's
  helpers (fuse-overlayfs), dockerd, containerd and its shims;
* cmlab's own processes (none while a lab is only up: no probe runs).

The lab is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab.api import Lab  # noqa: E402
from cmlab.topology.resolve import parse_assignments  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
HOST_HELPERS = ("fuse-overlayfs", "dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy")


def proc_cpu(pid: int) -> tuple[str, float] | None:
    """``(name, CPU seconds so far)`` of a process, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return name, (int(fields[11]) + int(fields[12])) / TICK


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def container_cpu_s(container) -> float:
    stats = container.stats(stream=False)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def container_pids(container) -> list[int]:
    top = container.top(ps_args="-e -o pid")
    return [int(row[0]) for row in top.get("Processes") or []]


def snapshot(lab: Lab) -> dict:
    containers = lab.runtime.containers(lab.plan.name)
    snap: dict = {"t": time.monotonic(), "containers": {}, "procs": {}, "host": {}, "cmlab": {}}
    mine = set()
    for c in containers:
        snap["containers"][c.name] = container_cpu_s(c)
        for pid in container_pids(c):
            got = proc_cpu(pid)
            if got:
                snap["procs"][pid] = (c.name, *got)
                mine.add(pid)
    for pid in all_pids():
        if pid in mine or pid == os.getpid():
            continue
        got = proc_cpu(pid)
        if got is None:
            continue
        name, cpu = got
        if name.startswith(HOST_HELPERS):
            snap["host"][pid] = (name, cpu)
        else:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"cmlab" in cmdline:
                snap["cmlab"][pid] = (name, cpu)
    return snap


def pct(seconds: float, window: float) -> str:
    return f"{100 * seconds / window:6.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", default=str(ROOT / "topologies" / "quickstart.yaml"))
    ap.add_argument("--seconds", type=float, default=60.0, help="the measured window, seconds")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds between ready and the window")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    args = ap.parse_args()

    lab = Lab.from_topology(args.topology, name="bench-idle", allocate=True, parameters=parse_assignments(args.assignments))
    lab.down()
    t0 = time.monotonic()
    lab.up()
    print(f"{lab.plan.engine}, {len(lab.plan.nodes)} nodes ({Path(args.topology).name}): up in {time.monotonic() - t0:.1f} s; "
          f"settling {args.settle:.0f} s, then measuring {args.seconds:.0f} s")
    try:
        time.sleep(args.settle)  # the benchmark's settle period, not a wait for a condition
        a = snapshot(lab)
        time.sleep(args.seconds)  # the measured window
        b = snapshot(lab)
        window = b["t"] - a["t"]
        print(f"\nwindow {window:.1f} s; CPU as % of one core")
        total = 0.0
        for name, cpu in sorted(b["containers"].items()):
            used = cpu - a["containers"].get(name, cpu)
            total += used
            lasting: dict[str, float] = defaultdict(float)
            for pid, (cname, pname, pcpu) in b["procs"].items():
                if cname == name and pid in a["procs"]:
                    lasting[pname] += pcpu - a["procs"][pid][2]
            short = used - sum(lasting.values())
            print(f"  {name:34} {pct(used, window)}")
            for pname, s in sorted(lasting.items(), key=lambda kv: -kv[1])[:5]:
                if s > 0:
                    print(f"      {pname:30} {pct(s, window)}")
            if short > 0.005 * window:
                print(f"      {'(processes that came and went)':30} {pct(short, window)}")
        print(f"  {'containers in all':34} {pct(total, window)}")
        for key, title in (("host", "host processes serving the containers"), ("cmlab", "cmlab's own processes")):
            by_name: dict[str, float] = defaultdict(float)
            for pid, (pname, pcpu) in b[key].items():
                if pid in a[key]:
                    by_name[pname] += pcpu - a[key][pid][1]
            print(f"  {title:34} {pct(sum(by_name.values()), window)}")
            for pname, s in sorted(by_name.items(), key=lambda kv: -kv[1])[:5]:
                if s > 0:
                    print(f"      {pname:30} {pct(s, window)}")
        load = os.getloadavg()
        print(f"host load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    main()
