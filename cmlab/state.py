"""Where cmlab keeps what is not in Docker.

* The lab's *runtime state* (the record of active faults) lives in
  ``$CMLAB_STATE_DIR/<lab>/`` (default ``/run/cmlab`` as root, else
  ``$XDG_RUNTIME_DIR/cmlab``): it describes kernel state that a reboot clears
  too, and ``down`` removes it.
* The lab's *results* (the event log, reports) live in
  ``$CMLAB_RESULTS_DIR/<lab>/`` (default ``~/.local/share/cmlab/results``) and
  outlive the lab.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def state_root() -> Path:
    given = os.environ.get("CMLAB_STATE_DIR")
    if given:
        return Path(given)
    if os.geteuid() == 0:
        return Path("/run/cmlab")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / "cmlab"


def lab_state_dir(lab: str) -> Path:
    path = state_root() / lab
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_lab_state(lab: str) -> None:
    shutil.rmtree(state_root() / lab, ignore_errors=True)


def results_dir(lab: str) -> Path:
    root = Path(os.environ.get("CMLAB_RESULTS_DIR") or Path.home() / ".local" / "share" / "cmlab" / "results")
    path = root / lab
    path.mkdir(parents=True, exist_ok=True)
    return path
