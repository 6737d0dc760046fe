"""Parameter sweeps: one scenario run across values of the engine's own
timing knobs (a scenario file's ``sweep:``).

For each setting (every combination of the swept values), the lab is
brought up again from its own resolved topology with those parameters,
the scenario's bounds are derived from the engine's timing *for that
setting*, the trials run, and the settings are reported side by side:
``sweep.json`` (the metrics' summaries, the bound and the verdict of each
setting), ``sweep.png`` (client RTO against the parameter, with each
setting's bound) and each setting's own run directory. A setting whose
bound is broken fails the sweep. Every setting is resolved (and so
checked) before the running lab is touched; afterwards the lab is brought
back with its original parameters.
"""

from __future__ import annotations

import io
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cmlab.checkers.metrics import SUMMARISED
from cmlab.probes.probeset import Cadence
from cmlab.scenarios import Scenario
from cmlab.trials import Run, new_run_dir, run_scenario

if TYPE_CHECKING:
    from cmlab.lab import Lab


@dataclass
class Setting:
    parameters: dict[str, Any]
    run: Run
    report: dict[str, Any]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.parameters.items())


@dataclass
class SweepResult:
    directory: Path
    settings: list[Setting]
    seed: int

    @property
    def passed(self) -> bool:
        return all(s.report["passed"] for s in self.settings)


def settings_of(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the swept values, in the file's order."""
    keys = list(sweep)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]


def _slug(parameters: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in parameters.items()).replace("/", "_")[:120]


def run_sweep(lab: "Lab", scenario: Scenario, relaunch: Callable[[Path], "Lab"], trials: int = 1,
              cadence: Cadence | None = None, seed: int | None = None, directory: Path | None = None) -> SweepResult:
    """Run ``scenario`` once per setting of its ``sweep:`` (see the module doc).

    :param relaunch: makes the lab for a topology file (``Lab.from_topology``), without creating anything.
    :param seed: one seed for every setting (so each draws the same choices); None: a random one.
    :raises TopologyError: a swept value is not valid for the engine (nothing was touched).
    :raises CmlabError: a lab could not come up, or a trial failed.
    """
    seed = secrets.randbits(32) if seed is None else seed
    directory = directory or new_run_dir(lab.plan.name, f"sweep-{scenario.name}")
    directory.mkdir(parents=True, exist_ok=True)
    original = lab.plan.to_topology()
    labs = []
    for parameters in settings_of(scenario.spec.sweep):
        path = directory / _slug(parameters) / "topology.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({**original, "parameters": {**original["parameters"], **parameters}}, sort_keys=False))
        labs.append((parameters, relaunch(path)))  # resolved and checked now, before anything is torn down
    results: list[Setting] = []
    try:
        for parameters, swept in labs:
            lab.down()
            swept.up()
            lab = swept
            run = run_scenario(swept, scenario, trials, cadence=cadence, seed=seed,
                               directory=directory / _slug(parameters) / "run")
            report = json.loads((run.directory / "report.json").read_text())
            results.append(Setting(parameters, run, report))
            _write(directory, scenario, results)
    finally:
        back = directory / "original-topology.yaml"
        back.write_text(yaml.safe_dump(original, sort_keys=False))
        restored = relaunch(back)
        if restored.plan.digest != lab.plan.digest:
            lab.down()
            restored.up()
    return SweepResult(directory, results, seed)


def _write(directory: Path, scenario: Scenario, settings: list[Setting]) -> None:
    doc = {
        "schema": "cmlab.sweep/1", "scenario": scenario.name, "sweep": scenario.spec.sweep,
        "seed": settings[0].run.seed if settings else None,
        "settings": [{
            "parameters": s.parameters, "run": str(s.run.directory), "passed": s.report["passed"],
            "rto_bound_s": s.report["scenario"]["promises"]["rto_bound_s"],
            "summary": {k: s.report["summary"][k] for k in SUMMARISED}, "totals": s.report["totals"],
        } for s in settings],
    }
    (directory / "sweep.json").write_text(json.dumps(doc, indent=2, default=str))
    (directory / "sweep.png").write_bytes(plot(doc))


def plot(doc: dict[str, Any]) -> bytes:
    """Client RTO (min, p50, max over the trials) and the promised bound
    against the swept setting, seconds (PNG)."""
    from cmlab.report.plot import plt

    rows = doc["settings"]
    labels = [", ".join(f"{k}={v}" for k, v in r["parameters"].items()) for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rows) + 2), 3.5))
    rto = [r["summary"]["client_rto_s"] for r in rows]
    p50 = [s.get("p50") for s in rto]
    lo = [(s["p50"] - s["min"]) if "p50" in s else 0 for s in rto]
    hi = [(s["max"] - s["p50"]) if "p50" in s else 0 for s in rto]
    ax.errorbar(list(xs), [v if v is not None else float("nan") for v in p50], yerr=[lo, hi], fmt="o", capsize=4,
                label="client RTO (p50, min-max)")
    bounds = [r["rto_bound_s"] for r in rows]
    if any(b is not None for b in bounds):
        ax.plot(list(xs), [b if b is not None else float("nan") for b in bounds], "r_", markersize=20, label="bound")
    ax.set_xticks(list(xs), labels, rotation=20 if len(rows) > 4 else 0)
    ax.set_ylabel("seconds")
    ax.set_title(f"{doc['scenario']}: client RTO per setting")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
