#!/usr/bin/env python3
"""Benchmark of the lab life cycle; prints numbers, asserts nothing.

    .venv/bin/python ci/bench_up.py [--trials 3] [--cold]

Prints: cold image build (with --cold: the base and engine images are
removed first), no-op rebuild, warm `up` (images present) of the quickstart
topology to a ready cluster with the VIP on the primary, fresh (``--fresh``:
initdb and standby builds) and from a snapshot (alternating, same host
load), each split into its phases (images, containers, then each reason the
engine gave for not being ready yet, in order: the engine's own start-up),
`down`, and the lab's peak memory (sum over containers of the kernel's max
usage, cgroup v1; or current usage).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab.api import Lab  # noqa: E402
from cmlab.images.build import ImageBuilder  # noqa: E402
from cmlab.runtime.client import connect  # noqa: E402


def spread(xs: list[float]) -> str:
    return f"min {min(xs):.2f} / median {statistics.median(xs):.2f} / max {max(xs):.2f} s (n={len(xs)})"


def peak_memory(lab: Lab) -> int:
    total = 0
    for c in lab.runtime.containers(lab.plan.name):
        mem = c.stats(stream=False).get("memory_stats", {})
        total += int(mem.get("max_usage") or mem.get("usage") or 0)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="remove the images first and time a cold build")
    args = ap.parse_args()

    client = connect()
    lab = Lab.from_topology(ROOT / "topologies" / "quickstart.yaml", name="bench-up", allocate=True)
    lab.down()
    builder = ImageBuilder(client)
    engine_tag, base_tag = builder.engine_tag(lab.engine.recipe), builder.base_tag()

    if args.cold:
        for tag in (engine_tag, base_tag):
            if client.images.list(name=tag):
                client.images.remove(tag, force=True)
        t0 = time.monotonic()
        lab.build()
        print(f"cold image build (base + {lab.engine.name}): {time.monotonic() - t0:.1f} s")
    else:
        lab.build()
    noop = []
    for _ in range(args.trials):
        t0 = time.monotonic()
        lab.build()
        noop.append(time.monotonic() - t0)
    print(f"no-op rebuild (in process): {spread(noop)}")
    cli = []
    for _ in range(args.trials):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "cmlab.cli", "build", str(ROOT / "topologies" / "quickstart.yaml")],
                       check=True, capture_output=True)
        cli.append(time.monotonic() - t0)
    print(f"no-op `cmlab build` (a new process): {spread(cli)}")

    # A snapshot of this topology saved by the first `up` (not timed), then
    # alternating fresh and restored `up`s, so that both see the same host.
    if lab.snapshot_key() is not None:
        lab.up()
        lab.down()
    ups: dict[str, list[float]] = {"fresh": [], "from snapshot": []}
    phases: dict[str, dict[str, list[float]]] = {"fresh": {}, "from snapshot": {}}
    downs, peaks = [], []
    for _ in range(args.trials):
        for mode in ups:
            t0 = time.monotonic()
            status = lab.up(fresh=mode == "fresh")
            ups[mode].append(time.monotonic() - t0)
            assert status is not None and status.ready
            for what, seconds in lab.up_phases:
                phases[mode].setdefault(what, []).append(seconds)
            peaks.append(peak_memory(lab))
            t0 = time.monotonic()
            lab.down()
            downs.append(time.monotonic() - t0)
    for mode, xs in ups.items():
        print(f"warm `up` to ready (VIP on the primary), {mode}: {spread(xs)}")
        for what, ys in phases[mode].items():
            print(f"    {what:70} median {statistics.median(ys):6.2f} s (in {len(ys)} of {len(xs)} ups)")
    print(f"down: {spread(downs)}")
    print(f"lab peak memory: max {max(peaks) / 2**20:.0f} MiB over {len(peaks)} ups (3 nodes)")


if __name__ == "__main__":
    main()
