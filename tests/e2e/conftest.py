"""Fixtures of the end-to-end tests: real images, real containers.

Each test module brings up its own lab from an example topology, renamed and
with its subnets left to the allocator so that it never collides with a lab a
developer has up. Teardown removes the lab and asserts nothing is left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cmlab.api import Lab
from cmlab.pytest_plugin import _FAILED_LABS, lab_lifecycle, worker_id
from cmlab.errors import DockerUnavailable
from cmlab.runtime.client import connect
from cmlab.runtime import disks
from cmlab.runtime.docker import DockerRuntime
from cmlab.state import state_root

ROOT = Path(__file__).resolve().parents[2]
EMPTY = {"containers": [], "networks": [], "volumes": []}


def example_topology(tmp_path: Path, example: str, name: str, **extra) -> Path:
    """A copy of ``topologies/<example>.yaml`` named ``name``, with subnets and
    VIP addresses left out (allocated from the free pool) and ``extra`` keys set."""
    data = yaml.safe_load((ROOT / "topologies" / f"{example}.yaml").read_text())
    data["name"] = name
    data.update(extra)
    for az in data["azs"]:
        az.pop("subnet", None)
    for vip in data.get("vips", []):
        vip.pop("address", None)
    for node in data["nodes"]:
        node.pop("address", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def two_az_lab(docker_client, request, tmp_path_factory) -> Iterator[Lab]:
    """The two-az example (3 + 2 nodes, router), shared by the tests that only read it or heal after themselves."""
    disks = [{"name": "voting", "size_mb": 64, "kind": "block"},
             {"name": "data", "size_mb": 64, "kind": "filesystem", "nodes": ["pg1", "pg2"]}]
    path = example_topology(tmp_path_factory.mktemp("topo"), "two-az", "e2e-two-az", disks=disks)
    yield from lab_up(request, path)


def example_lab(example: str, name: str):
    """A module-scoped fixture: a lab of its own, ``name``, from the example
    topology ``example`` (a file of ``topologies/`` without ``.yaml``)."""
    @pytest.fixture(scope="module")
    def fixture(docker_client, request, tmp_path_factory) -> Iterator[Lab]:
        yield from lab_up(request, example_topology(tmp_path_factory.mktemp("topo"), example, name))
    return fixture


def quickstart_lab(name: str):
    """:func:`example_lab` of the quickstart example, for tests that take it
    down or bring it up again (sweeps, replays)."""
    return example_lab("quickstart", name)


#: The scenarios' faults are injected from the host into the nodes' namespaces.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the scenarios' faults need root")


def lab_up(request: pytest.FixtureRequest, path: Path) -> Iterator[Lab]:
    """The plugin's lab life cycle (worker-suffixed name, owner labels), then
    the check that nothing of the lab is left."""
    lab = None
    for lab in lab_lifecycle(request, path, None):
        yield lab
    if lab is not None and lab.plan.name not in request.session.stash.get(_FAILED_LABS, set()):
        assert_lab_gone(lab)


def assert_lab_gone(lab: Lab) -> None:
    """Nothing of the lab remains: Docker objects, loop devices, disk files, state."""
    left = DockerRuntime(lab.client).leftovers(lab.plan.name)
    assert left == EMPTY, f"down left objects of lab {lab.plan.name}: {left}"
    if os.geteuid() == 0:
        assert disks.loop_devices(lab.plan.name) == {}, "down left loop devices"
    assert not disks.disk_dir(lab.plan.name).exists(), "down left the disk files"
    assert not (state_root() / lab.plan.name).exists(), "down left the lab's state"


@pytest.fixture(scope="session", autouse=True)
def no_lab_left_behind(request):
    """After the suite, no object of a test lab (named e2e-*) may remain."""
    yield
    try:
        runtime = DockerRuntime(connect())
    except DockerUnavailable:
        return
    worker = worker_id(request.config)
    mine = (lambda lab: lab.endswith(f"-{worker}")) if worker != "main" else (lambda lab: True)
    stray = [lab for lab in runtime.labs() if lab.startswith("e2e-") and mine(lab)]
    for lab in stray:
        runtime.remove(lab)
    assert not stray, f"test labs left behind (now removed): {stray}"
