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

    bundle = api.bundle(run.directory, tmp_path / "run.tar.zst")  # images: tests/hostile loads a forged archive
    # The bundle's lab is still up: the replay must make a lab of its own and leave this one alone.
    containers = sorted((c.name, c.id) for c in replay_lab.runtime.containers(replay_lab.plan.name))
    tags = {t: i.id for i in replay_lab.client.images.list() for t in i.tags}
    result = api.replay(bundle)
    print(f"\nreplay of vip-removed, seed 5: lab {result.run.lab}, images {[c.how for c in result.images]}; "
          + ", ".join(f"{r.name} {r.bundle} / {r.replay}" for r in result.rows if r.kind == "timing" and r.bundle is not None))
    assert result.run.lab == f"{replay_lab.plan.name}-r1"
    assert [c.how for c in result.images] == ["same image"] * len(images)
    verdicts = [r for r in result.rows if r.kind == "verdict"]
    assert verdicts and result.verdicts_match, [r for r in verdicts if not r.ok]
    assert json.loads((result.run.directory / "report.json").read_text())["seed"] == 5
    assert sorted((c.name, c.id) for c in replay_lab.runtime.containers(replay_lab.plan.name)) == containers
    assert replay_lab.status().ready
    now = {t: i.id for i in replay_lab.client.images.list() for t in i.tags}
    assert {t: now.get(t) for t in tags} == tags, "the replay moved a tag of this host"
    assert not [t for t in now if t.startswith("cmlab-replay/")], "the replay left its image tags"
    assert_lab_gone(api.Lab(result_plan(result), replay_lab.engine, replay_lab.client))


def result_plan(result):
    from cmlab.topology.plan import LabPlan

    return LabPlan.from_json((result.run.directory / "lab" / "plan.json").read_text())
