"""A test run that dies mid-lab leaves a lab that the next run reaps; a run
stopped with SIGTERM cleans up after itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cmlab.runtime.docker import DockerRuntime
from cmlab.wait import wait_for

from .conftest import EMPTY, example_topology

pytestmark = pytest.mark.docker

HANG = """
import time
from cmlab.pytest_plugin import lab_fixture

hang = lab_fixture({topology!r}, scope="module")


def test_hang(hang):
    time.sleep(600)  # the outer test ends this run first
"""


def start_hanging_run(tmp_path, name: str) -> subprocess.Popen:
    topology = example_topology(tmp_path, "quickstart", name)
    (tmp_path / "test_hang.py").write_text(HANG.format(topology=str(topology)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cmlab-no-reap",
                             "-p", "no:xdist", str(tmp_path / "test_hang.py")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_running_lab(runtime: DockerRuntime, name: str, proc: subprocess.Popen) -> None:
    def running() -> int:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "the run ended early"
        return sum(c.status == "running" for c in runtime.containers(name))

    wait_for(running, lambda n: n == 3, 180, 0.5, f"lab {name} running")


def test_a_killed_run_leaves_a_lab_that_the_next_run_reaps_completely(docker_client, tmp_path):
    runtime = DockerRuntime(docker_client)
    proc = start_hanging_run(tmp_path, "e2e-crashed")
    try:
        wait_for_running_lab(runtime, "e2e-crashed", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert runtime.leftovers("e2e-crashed")["containers"], "the killed run should have left its lab"
    # The next test run (any suite using the plugin) reaps it when it starts.
    (tmp_path / "next").mkdir()
    (tmp_path / "next" / "test_next.py").write_text("def test_nothing_to_do():\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                             str(tmp_path / "next")], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reaped lab 'e2e-crashed'" in result.stdout + result.stderr
    assert runtime.leftovers("e2e-crashed") == EMPTY


def test_sigterm_runs_the_teardown(docker_client, tmp_path):
    runtime = DockerRuntime(docker_client)
    proc = start_hanging_run(tmp_path, "e2e-sigterm")
    try:
        wait_for_running_lab(runtime, "e2e-sigterm", proc)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert runtime.leftovers("e2e-sigterm") == EMPTY


def test_reap_leaves_labs_without_an_owner_alone(docker_client):
    """A lab made at a terminal (no owner labels) is never reaped."""
    result = subprocess.run([sys.executable, "-m", "cmlab.cli", "reap", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for line in result.stdout.splitlines():
        name = line.split("'")[1]
        assert DockerRuntime(docker_client).owner_labels(name), f"{name} has no owner and must not be reaped"
