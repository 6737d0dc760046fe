"""A parameter sweep: the same scenario at two Patroni ttl values, each on
the lab brought up with it, each judged against its own bound."""

from __future__ import annotations

import json

import pytest

from cmlab import api

from .conftest import needs_root, quickstart_lab

pytestmark = pytest.mark.docker

SWEEP = """
summary: kill-primary at two ttl values
expect: {failover: true, rto-under: failover_s}
sweep: {ttl: [10, 14]}
schedule:
  - {fault: crash, target: primary}
  - {wait: writes-resumed, deadline: rto + 5}
  - heal
"""


sweep_lab = quickstart_lab("e2e-sweep")


@needs_root
def test_a_sweep_runs_each_setting_on_its_own_lab_against_its_own_bound(sweep_lab: api.Lab, tmp_path):
    f = tmp_path / "ttl-sweep.yaml"
    f.write_text(SWEEP)
    result = api.sweep(sweep_lab, api.scenario(str(f)), trials=1, seed=3, directory=tmp_path / "sweep")
    doc = json.loads((result.directory / "sweep.json").read_text())
    print("\n" + "; ".join(f"ttl={s['parameters']['ttl']}: RTO {s['summary']['client_rto_s'].get('p50')} s "
                           f"(bound {s['rto_bound_s']} s)" for s in doc["settings"]))
    assert [s["parameters"] for s in doc["settings"]] == [{"ttl": 10}, {"ttl": 14}]
    bounds = [s["rto_bound_s"] for s in doc["settings"]]
    assert bounds[1] - bounds[0] == 4  # Patroni's failover bound is ttl + loop_wait + 5 s
    for s in result.settings:
        assert s.run.trials[0].history.meta["timing"]["failover_s"] == s.report["scenario"]["promises"]["rto_bound_s"]
        assert s.run.parameters["ttl"] == s.parameters["ttl"]
    assert result.passed, doc
    assert (result.directory / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    back = api.Lab.attach(sweep_lab.plan.name)  # the lab is back with its own parameters
    assert back.plan.parameters["ttl"] == sweep_lab.plan.parameters["ttl"] and back.status().ready
