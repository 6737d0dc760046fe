#!/usr/bin/env python3
"""Benchmark of failover: N trials of a scenario; prints numbers, asserts nothing.

    .venv/bin/python ci/bench_failover.py [--trials 5] [--scenario kill-primary] [--fresh]

Brings up the quickstart topology as lab ``bench-failover`` (subnets
allocated), runs the trials on it (or on a fresh lab each time with
--fresh), prints min / p50 / p95 / max of every phase and the probes' CPU
cost, the run directory with its reports, and removes the lab.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab.api import Lab  # noqa: E402
from cmlab.checkers.metrics import SUMMARISED  # noqa: E402
from cmlab.scenarios import get  # noqa: E402
from cmlab.trials import run_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--scenario", default="kill-primary")
    ap.add_argument("--fresh", action="store_true", help="a fresh lab for each trial")
    args = ap.parse_args()

    lab = Lab.from_topology(ROOT / "topologies" / "quickstart.yaml", name="bench-failover", allocate=True)
    lab.down()
    lab.up()
    try:
        run = run_scenario(lab, get(args.scenario), args.trials, args.fresh)
    finally:
        lab.down()
    import json

    doc = json.loads((run.directory / "report.json").read_text())
    print(f"{args.scenario}: {args.trials} trials, {'fresh lab each' if args.fresh else 'one lab'}, "
          f"resolution {doc['resolution_s']} s, parameters ttl={lab.plan.parameters['ttl']} "
          f"loop_wait={lab.plan.parameters['loop_wait']} retry_timeout={lab.plan.parameters['retry_timeout']}")
    print(f"{'metric (s)':24} {'n':>3} {'min':>8} {'p50':>8} {'p95':>8} {'max':>8} {'stdev':>8}")
    for metric in SUMMARISED:
        st = doc["summary"][metric]
        if st["n"]:
            print(f"{metric:24} {st['n']:>3} {st['min']:8.3f} {st['p50']:8.3f} {st['p95']:8.3f} {st['max']:8.3f} {st['stdev']:8.3f}")
    t = doc["totals"]
    cpu = doc["probe_cpu_percent"]
    print(f"failovers {t['failovers']}/{t['trials']}, lost acknowledged writes {t['lost_writes']}, split-brain intervals "
          f"{t['split_brain_intervals']}, duplicate-VIP intervals {t['duplicate_vip_intervals']}, unknown writes {t['unknown_writes']}")
    print(f"probe CPU: p50 {cpu.get('p50', 0):.1f} % / max {cpu.get('max', 0):.1f} % of one core")
    print(f"reports: {run.directory}/report.html")


if __name__ == "__main__":
    main()
