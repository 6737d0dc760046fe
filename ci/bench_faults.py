#!/usr/bin/env python3
"""Benchmark of the nemesis; prints numbers, asserts nothing.

    .venv/bin/python ci/bench_faults.py [--trials 10]

Brings up the two-az example as lab ``bench-faults`` and prints, for each
fault kind, the time from the API call until the fault is in effect, until
its undo is in effect, and until a full heal (undo plus the sweep of every
namespace) returns: min / median / max in milliseconds. Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab.api import Lab  # noqa: E402


def ms(xs: list[float]) -> str:
    return f"{1000 * min(xs):6.1f} / {1000 * statistics.median(xs):6.1f} / {1000 * max(xs):6.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()

    lab = Lab.from_topology(ROOT / "topologies" / "two-az.yaml", name="bench-faults", allocate=True)
    lab.down()
    lab.up()
    try:
        nemesis = lab.nemesis(seed=1)
        builders = {
            "isolate one node": lambda: nemesis.isolate("pg3"),
            "split AZs at the router": lambda: nemesis.split_azs(["az2"]),
            "loss 10% egress": lambda: nemesis.loss("pg3", 10),
            "bandwidth 10mbit": lambda: nemesis.bandwidth("pg3", "10mbit"),
            "link down": lambda: nemesis.link_down("pg3"),
            "freeze the database": lambda: nemesis.freeze("pg5", "database"),
            "pause a container": lambda: nemesis.pause("pg5"),
        }
        print(f"{'fault':28} {'apply ms':>22} {'undo ms':>22} {'heal ms':>22}   (min / median / max, n={args.trials})")
        for name, build in builders.items():
            applies, undos, heals = [], [], []
            for _ in range(args.trials):
                fault = build()
                applied = nemesis.apply(fault)
                applies.append(applied.t_effect - applied.t_call)
                t0 = time.monotonic()
                nemesis.undo(fault.key)
                undos.append(time.monotonic() - t0)
                nemesis.apply(fault)
                t0 = time.monotonic()
                nemesis.heal()
                heals.append(time.monotonic() - t0)
            print(f"{name:28} {ms(applies):>22} {ms(undos):>22} {ms(heals):>22}")
    finally:
        lab.down()


if __name__ == "__main__":
    main()
