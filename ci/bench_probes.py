#!/usr/bin/env python3
"""Benchmark of the probes' own cost: prints numbers, asserts nothing.

    .venv/bin/python ci/bench_probes.py [--seconds 30] [--rounds 3] [--keep] [--topology FILE]

Brings up the quickstart topology (or ``--topology``) as lab ``bench-probes``
(subnets allocated), runs the whole probe set of a trial on the healthy cluster,
without a fault, for ``--seconds`` seconds, ``--rounds`` times, and prints
for every probe its CPU (percent of one core, from the thread's own CPU
clock), its operations per second and CPU microseconds per operation; then
the process's CPU over the same window (threads included: what a user's
``top`` shows), and the whole host's CPU above an idle window of the same
length just before (what the probes cost the Docker daemon, containerd, runc
and the node processes too, e.g. one ``docker exec`` per CM reading).
``--exec-readings`` makes the CM engine read by an exec a reading (the old
way) for comparison. Removes the lab unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab.api import Lab  # noqa: E402
from cmlab.probes.probeset import Cadence, ProbeSet  # noqa: E402
from cmlab.probes.writer import reset_table  # noqa: E402


def process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def host_busy_s() -> float:
    """Busy CPU seconds of the whole host so far (all cores; /proc/stat)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the lab up (and reuse it next time)")
    ap.add_argument("--topology", default=str(ROOT / "topologies" / "quickstart.yaml"))
    ap.add_argument("--exec-readings", action="store_true", help="CM: one docker exec per cm_ctl reading (the old way)")
    args = ap.parse_args()

    lab = Lab.from_topology(args.topology, name="bench-probes", allocate=True)
    lab.up()  # waits for the ready cluster (the engine's start deadline)
    try:
        primary = lab.ensure_ready().primary
        reset_table(lab.engine.dsn(lab.plan, str(lab.plan.node(primary).address)))
        cadence = Cadence()
        print(f"cadence: writes {cadence.write_interval_s * 1000:.0f} ms, leader and VIP {cadence.fast_interval_s * 1000:.0f} ms, "
              f"roles {cadence.role_interval_s * 1000:.0f} ms; {args.seconds:.0f} s per round")
        if args.exec_readings:
            type(lab.engine).stream_readings = False
        for r in range(1, args.rounds + 1):
            h0, t0 = host_busy_s(), time.monotonic()
            time.sleep(args.seconds)  # the idle window: the lab without probes
            idle = 100 * (host_busy_s() - h0) / (time.monotonic() - t0)
            probes = ProbeSet(lab.plan, lab.engine, lab.runtime, cadence)
            c0, h1 = process_cpu_s(), host_busy_s()
            probes.start()
            time.sleep(args.seconds)  # a benchmark's measuring window, not a wait for a state
            history = probes.stop()
            wall = probes.t_stop - probes.t_start
            process = 100 * (process_cpu_s() - c0) / wall
            host = 100 * (host_busy_s() - h1) / wall
            on_loop = [o for o in probes.observers if o not in probes._threads]
            loop_ops = sum(len(w.writes) for w in probes.writers) + sum(len(o.samples) for o in on_loop)
            names = "".join(f" + {o.name}" for o in on_loop)
            rows = [(f"loop: {len(probes.writers)} writers{names}", probes.loop.cpu_s, loop_ops)]
            rows += [(p.name, p.cpu_s, len(p.samples)) for p in probes._threads]
            print(f"round {r}: {'probe':34} {'CPU %':>7} {'ops/s':>7} {'µs/op':>7}")
            for name, cpu, ops in rows:
                print(f"         {name:34} {100 * cpu / wall:7.2f} {ops / wall:7.1f} {1e6 * cpu / max(ops, 1):7.0f}")
            failed = sum(1 for w in history.writes if w.acked is None)
            print(f"         {'probe threads':34} {history.meta['probe_cpu_percent_of_one_core']:7.2f}"
                  f"   (process {process:.2f} %, failed writes {failed}: the standbys refuse them)")
            print(f"         {'host above idle':34} {host - idle:7.2f}   (host {host:.1f} %, idle window {idle:.1f} %,"
                  " percent of one core)")
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    main()
