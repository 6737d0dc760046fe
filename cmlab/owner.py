"""Who owns a lab, so that a crashed owner's lab can be reaped.

A lab made by a test session carries its owner on every object: the host,
the boot, the process id and the process's start time (so a recycled pid is
not mistaken for the owner). A lab made at a terminal (``cmlab up``) has no
owner process: it lives until ``cmlab down``, and ``reap`` leaves it alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = "cmlab.owner.host"
BOOT = "cmlab.owner.boot"
PID = "cmlab.owner.pid"
START = "cmlab.owner.start"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or ''."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def current(pid: int | None = None) -> dict[str, str]:
    """Owner labels for this process (or ``pid``)."""
    pid = pid or os.getpid()
    return {HOST: socket.gethostname(), BOOT: _boot_id(), PID: str(pid), START: _start_time(pid)}


def alive(labels: dict[str, str]) -> bool | None:
    """Whether the owner named by ``labels`` still runs: True, False, or None
    when it cannot be told here (no owner labels: a terminal's lab; another host)."""
    if PID not in labels:
        return None
    if labels.get(HOST) != socket.gethostname():
        return None
    if labels.get(BOOT) != _boot_id():
        return False  # the host rebooted since: the owner is gone
    return _start_time(int(labels[PID])) == labels.get(START) != ""
