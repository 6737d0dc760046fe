#!/usr/bin/env python3
"""Benchmark: one host against three swarm hosts; prints numbers, asserts nothing.

    .venv/bin/python ci/bench_hosts.py [--trials 5] [--scenario kill-primary] [--example quickstart]

For an example lab on this machine's Docker Engine (bridge networks) and the
same lab spread over three simulated hosts (`topologies/<example>-across-hosts.yaml`:
the quickstart one node a host, overlay network, no VIP, so its clients seek
the primary; two-az with each AZ's databases on a host and the third etcd
member on the third), it prints: `up` to a
ready cluster (the hosts' first `up` also copies the images), the scenario's
client RTO, detection and promotion (min / p50 / max over the trials), and the
time to apply the first fault and to heal (from each trial's schedule.json:
the fault step's call to its effect, the heal step's whole length).
The simulated hosts are made here and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlab import api  # noqa: E402
from cmlab.api import Lab  # noqa: E402
from cmlab.runtime.client import connect  # noqa: E402
from cmlab.runtime.simhosts import SimulatedHosts  # noqa: E402


def spread(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{min(xs):6.2f} / {statistics.median(xs):6.2f} / {max(xs):6.2f}"


def measure(lab: Lab, scenario: str, trials: int) -> dict[str, object]:
    lab.down()
    t0 = time.monotonic()
    lab.up(init_swarm=True)
    up_s = time.monotonic() - t0
    run = api.run(lab, api.scenario(scenario), trials=trials, seed=1)
    apply_s, heal_s = [], []
    for trial in run.trials:
        steps = json.loads((trial.directory / "schedule.json").read_text())
        fault = next(s for s in steps if s["verb"] == "fault")
        apply_s.append(fault["t_effect"] - fault["t_start"])
        heal_s += [s["t_end"] - s["t_start"] for s in steps if s["verb"] == "heal"]
    m = [t.metrics for t in run.trials]
    lab.down()
    return {"up_s": up_s, "rto": [x.client_rto_s for x in m], "detection": [x.detection_s for x in m],
            "promotion": [x.promotion_s for x in m], "vip": [x.vip_s for x in m], "apply": apply_s, "heal": heal_s,
            "failovers": f"{sum(1 for x in m if x.failover)}/{len(m)}",
            "lost": sum(len(x.lost_writes) for x in m), "split": sum(len(x.split_brain) for x in m)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--scenario", default="kill-primary")
    ap.add_argument("--example", default="quickstart", choices=["quickstart", "two-az"])
    args = ap.parse_args()

    one = Lab.from_topology(ROOT / "topologies" / f"{args.example}.yaml", name="bench-1host", allocate=True)
    results = {"one host (bridge networks)": measure(one, args.scenario, args.trials)}

    sim = SimulatedHosts(connect(), "bench", 3)
    try:
        hosts = sim.up()
        data = yaml.safe_load((ROOT / "topologies" / f"{args.example}-across-hosts.yaml").read_text())
        data["hosts"] = [h.topology_entry() for h in hosts]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench-3hosts.yaml"
            path.write_text(yaml.safe_dump(data))
            three = Lab.from_topology(path, name="bench-3hosts", allocate=True)
            first = time.monotonic()
            three.up(init_swarm=True)  # the first up also copies the images
            print(f"three hosts: first up (images copied to each host): {time.monotonic() - first:.1f} s")
            results["three swarm hosts (overlay networks)"] = measure(three, args.scenario, args.trials)
    finally:
        sim.down()

    print(f"\n{args.scenario}, {args.trials} trials each; min / p50 / max, seconds")
    for name, r in results.items():
        print(f"\n{name}")
        print(f"  up to ready        {r['up_s']:6.1f}")
        print(f"  failovers          {r['failovers']}")
        for key, label in (("rto", "client RTO"), ("detection", "detection"), ("promotion", "promotion"),
                           ("vip", "VIP moved"), ("apply", "fault apply"), ("heal", "heal")):
            print(f"  {label:<18} {spread(r[key])}")  # type: ignore[arg-type]
        print(f"  lost acknowledged writes {r['lost']}, split-brain intervals {r['split']}")


if __name__ == "__main__":
    main()
