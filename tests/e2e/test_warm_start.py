"""Warm start: the first `up` of a topology saves its ready cluster, the next
restores it into a lab of another name and other subnets, `--fresh` does
neither, and `down` leaves the snapshot while `snapshots --prune` removes it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cmlab import api
from cmlab.api import Lab
from cmlab.engines.postgres_patroni import config, warm
from cmlab.errors import LabError
from cmlab.engines.base import SavedDir
from cmlab.pytest_plugin import worker_id
from cmlab.runtime import snapshots

from .conftest import assert_lab_gone, example_topology

pytestmark = pytest.mark.docker


def system_identifier(lab: Lab, node: str) -> str:
    code, out = lab.exec(node, [f"{config.BIN_DIR}/pg_controldata", config.DATA_DIR], user="postgres")
    assert code == 0, out
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Database system identifier"))


def setting(lab: Lab, node: str, name: str) -> str:
    code, out = lab.exec(node, ["psql", "-X", "-At", "-h", "/var/run/postgresql", "-U", "postgres", "-c", f"SHOW {name}"],
                         user="postgres")
    assert code == 0, out
    return out.strip()


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    # A parameter of this run's own makes a key no other run or worker shares.
    marker = uuid.uuid4().hex[:12]
    return example_topology(tmp_path, "quickstart", "e2e-warm", parameters={
        "ttl": 10, "loop_wait": 2, "retry_timeout": 4, "synchronous_mode": True,
        "postgresql": {"cmlab.warm_test": marker}})


def test_second_up_restores_the_first_ones_cluster_and_fresh_does_not(docker_client, topology: Path, request):
    worker = worker_id(request.config)
    made: list[Lab] = []

    def up(name: str, fresh: bool = False) -> Lab:
        lab = Lab.from_topology(topology, name=f"{name}-{worker}"[:20], allocate=True)
        made.append(lab)
        lab.up(fresh=fresh)
        return lab

    key = None
    try:
        first = up("e2e-warm-a")
        phases = [what for what, _ in first.up_phases]
        assert "snapshot saved" in phases, phases
        key = first.snapshot_key()
        stored = snapshots.find(docker_client, key)
        assert stored is not None and stored.lab == first.plan.name and stored.names == (warm.VOLUME,)
        first_id = system_identifier(first, first.wait_ready(first.timing.start_s).primary)
        first.down()

        second = up("e2e-warm-b")
        phases = [what for what, _ in second.up_phases]
        assert f"containers created and started from snapshot {key}" in phases, phases
        assert "snapshot saved" not in phases
        assert second.plan.azs[0].subnet != first.plan.azs[0].subnet or second.plan.name != first.plan.name
        # Every node runs the first lab's data (no initdb), and the start-up
        # setting is PostgreSQL's default again once `up` has returned.
        for node in second.plan.nodes:
            assert system_identifier(second, node.name) == first_id
            assert setting(second, node.name, "wal_retrieve_retry_interval") == "5s"
        second.down()

        third = up("e2e-warm-c", fresh=True)
        phases = [what for what, _ in third.up_phases]
        assert not [p for p in phases if "snapshot" in p], phases
        assert system_identifier(third, third.wait_ready(third.timing.start_s).primary) != first_id
        third.down()
        for lab in made:
            assert_lab_gone(lab)  # the copier containers too
        assert snapshots.find(docker_client, key) is not None, "down must leave the snapshot"
    finally:
        for lab in made:
            lab.down()
        if key is not None:
            api.prune_snapshots([key])
    assert snapshots.find(docker_client, key) is None
    assert not [v.name for v in docker_client.volumes.list(filters={"label": [f"{snapshots.KEY}={key}"]})]


def test_a_save_that_fails_leaves_no_snapshot_behind(docker_client, tmp_path: Path):
    """A copy that fails (a directory that is not there) removes the volumes it made."""
    lab = Lab.from_topology(example_topology(tmp_path, "quickstart", "e2e-warm-bad"), allocate=True)
    key = "0badc0de" + uuid.uuid4().hex[:8]
    image = lab.build()
    node = lab.plan.nodes[0]
    saved = {"pgdata": SavedDir(node.name, "pgdata", "no-such-dir")}
    try:
        with pytest.raises(LabError, match="has no volume"):
            snapshots.save(docker_client, lab.plan, key, image, "sha256:x", saved)
        # An empty data volume of the lab's: the copy finds no such directory in it.
        docker_client.volumes.create(f"{node.container}-pgdata", labels={"cmlab.lab": lab.plan.name})
        with pytest.raises(LabError, match="saving the snapshot"):
            snapshots.save(docker_client, lab.plan, key, image, "sha256:x", saved)
        assert not docker_client.volumes.list(filters={"label": [f"{snapshots.KEY}={key}"]})
    finally:
        lab.down()
        for vol in docker_client.volumes.list(filters={"label": [f"{snapshots.KEY}={key}"]}):
            vol.remove(force=True)


def test_cli_lists_every_snapshot_that_is_complete_before_and_after_it(docker_client):
    """Other workers may save snapshots meanwhile: those complete before and
    after the command must be in its JSON, with their engine and lab."""
    before = {s.key: s for s in api.snapshots()[0]}
    run = subprocess.run([sys.executable, "-m", "cmlab.cli", "snapshots", "--json"], capture_output=True, text=True, timeout=60)
    after = {s.key for s in api.snapshots()[0]}
    assert run.returncode == 0, run.stderr
    listed = {s["key"]: s for s in json.loads(run.stdout)["snapshots"]}
    for key in set(before) & after:
        assert listed[key]["engine"] == before[key].engine and listed[key]["lab"] == before[key].lab
