"""`cmlab run`'s output and exit codes, without a lab: the API is replaced."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cmlab import api
from cmlab.checkers.metrics import TrialMetrics
from cmlab.cli import main
from cmlab.errors import LabError


@pytest.fixture
def fake_run(monkeypatch, tmp_path):
    """api.run replaced: one trial announced, a report.json whose promises are ``passed``."""
    state = {"passed": True}

    def run(lab, scenario, trials, fresh, cadence, seed=None, on_trial=None):
        doc = {"scenario": {"name": scenario.name}, "passed": state["passed"], "resolution_s": 0.02, "summary": {},
               "trials": [], "totals": {"trials": 1, "failovers": 1, "lost_writes": 0, "split_brain_intervals": 0,
                                        "duplicate_vip_intervals": 0}}
        (tmp_path / "report.json").write_text(json.dumps(doc))
        if on_trial is not None:
            on_trial(SimpleNamespace(index=1, metrics=TrialMetrics({"client_rto_s": 9.5, "lost_writes": []})), 1)
        return SimpleNamespace(directory=tmp_path, seed=7, report=doc)

    monkeypatch.setattr(api, "run", run)
    monkeypatch.setattr(api.Lab, "attach", classmethod(lambda cls, name, progress=None: SimpleNamespace(name=name)))
    return state


def test_each_trial_has_its_row_and_a_kept_promise_exits_0(fake_run):
    result = CliRunner().invoke(main, ["run", "-l", "x", "kill-primary"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "trial 1/1: " in result.output and "RTO 9.500 s" in result.output and "lost 0" in result.output


def test_json_is_the_report_alone_and_a_broken_promise_exits_1(fake_run):
    fake_run["passed"] = False
    result = CliRunner().invoke(main, ["run", "-l", "x", "kill-primary", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["passed"] is False  # nothing but the document on stdout


def test_a_run_that_cannot_be_made_exits_2(monkeypatch):
    def refuse(*args, **kwargs):
        raise LabError("lab x is not ready")

    monkeypatch.setattr(api, "run", refuse)
    monkeypatch.setattr(api.Lab, "attach", classmethod(lambda cls, name, progress=None: SimpleNamespace(name=name)))
    result = CliRunner().invoke(main, ["run", "-l", "x", "kill-primary"])
    assert result.exit_code == 2 and "not ready" in result.output
