"""Bad input and failed starts leave nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cmlab.api import Lab
from cmlab.errors import LabError
from cmlab.runtime.docker import DockerRuntime

from .conftest import EMPTY, example_topology

pytestmark = pytest.mark.docker


def test_a_bad_topology_exits_non_zero_with_one_message_and_creates_nothing(docker_client, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: e2e-bad\nazs: [{name: az1}]\nnodes:\n  - {name: a, az: az2}\n")
    result = subprocess.run([sys.executable, "-m", "cmlab.cli", "up", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:4:" in result.stderr and "unknown AZ 'az2'" in result.stderr and "fix:" in result.stderr
    assert DockerRuntime(docker_client).leftovers("e2e-bad") == EMPTY


def test_a_failed_up_removes_what_it_created(docker_client, tmp_path, monkeypatch):
    path = example_topology(tmp_path, "two-az", "e2e-fail")
    lab = Lab.from_topology(path)
    calls = []

    def broken(plan, node):
        calls.append(node.name)
        if len(calls) == 3:
            raise RuntimeError("engine blew up on the third node")
        return type(lab.engine).container(lab.engine, plan, node)

    monkeypatch.setattr(lab.engine, "container", broken)
    try:
        with pytest.raises(LabError, match="what was created is removed"):
            lab.up()
        assert DockerRuntime(docker_client).leftovers("e2e-fail") == EMPTY
    finally:
        lab.down()


def test_down_twice_and_down_of_an_unknown_lab_are_harmless(docker_client):
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "cmlab.cli", "down", "e2e-never-was"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "no lab 'e2e-never-was' here: nothing to remove" in result.stdout
