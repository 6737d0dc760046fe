"""Lab ownership: a live owner is alive, a dead or recycled one is not."""

from __future__ import annotations

import os
import subprocess
import sys

from cmlab import owner


def test_this_process_is_alive():
    assert owner.alive(owner.current()) is True


def test_a_finished_process_is_not():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    labels = owner.current(proc.pid)
    proc.kill()
    proc.wait()
    assert owner.alive(labels) is False


def test_a_recycled_pid_is_not_the_owner():
    labels = {**owner.current(), owner.START: "1"}
    assert owner.alive(labels) is False


def test_no_owner_or_another_host_cannot_be_told():
    assert owner.alive({}) is None
    assert owner.alive({**owner.current(), owner.HOST: "elsewhere"}) is None
    assert owner.current()[owner.PID] == str(os.getpid())
