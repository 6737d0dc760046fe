"""A run's bundle, and its replay on a fresh lab with the same verdicts."""

from __future__ import annotations

import json

import pytest

from cmlab import api
from cmlab.engines.postgres_patroni.config import REPLICATION, SUPERUSER

from .conftest import assert_lab_gone, needs_root, quickstart_lab

pytestmark = pytest.mark.docker


replay_lab = quickstart_lab("e2e-replay")


@needs_root
def test_a_bundled_run_replays_on_a_fresh_lab_with_the_same_verdicts(replay_lab: api.Lab, tmp_path):
    run = api.run(replay_lab, api.scenario("vip-removed"), trials=1, seed=5, directory=tmp_path / "run")
    lab_dir = run.directory / "lab"
    images = json.loads((lab_dir / "images.json").read_text())
    assert {i["container"] for i in images} == {n.container for n in replay_lab.plan.nodes}
    assert all(i["id"].startswith("sha256:") for i in images)
    manifests = list((lab_dir / "packages").glob("*.txt"))
    assert manifests and "patroni=" in manifests[0].read_text() and "=***" not in manifests[0].read_text()
    for node in replay_lab.plan.nodes:
        assert (lab_dir / "config" / node.name / "env.json").exists()
    assert json.loads((lab_dir / "doctor.json").read_text())["root"]["ok"] is True
    assert json.loads((lab_dir / "end" / "status.json").read_text())["ready"] is True
    every_text = "".join(p.read_text(errors="replace") for p in run.directory.rglob("*") if p.is_file())
    assert REPLICATION[1] not in every_text and f"password: {SUPERUSER[1]}\n" not in every_text

    bundle = api.bundle(run.directory, tmp_path / "run.tar.zst")
    replay_lab.down()
    result = api.replay(bundle)
    print(f"\nreplay of vip-removed, seed 5: images {[c.how for c in result.images]}; "
          + ", ".join(f"{r.name} {r.bundle} / {r.replay}" for r in result.rows if r.kind == "timing" and r.bundle is not None))
    assert [c.how for c in result.images] == ["same image"] * len(images)
    verdicts = [r for r in result.rows if r.kind == "verdict"]
    assert verdicts and result.verdicts_match, [r for r in verdicts if not r.ok]
    assert json.loads((result.run.directory / "report.json").read_text())["seed"] == 5
    assert_lab_gone(replay_lab)
