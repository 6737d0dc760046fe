"""Where cmlab keeps what is not in Docker.

* The lab's *runtime state* (the record of active faults) lives in
  ``$CMLAB_STATE_DIR/<lab>/`` (default ``/run/cmlab`` as root, else
  ``$XDG_RUNTIME_DIR/cmlab``): it describes kernel state that a reboot clears
  too, and ``down`` removes it.
* A lab across hosts also keeps its plan there (``plan.json``), as its
  containers are on other Docker Engines; ``down`` keeps it while a host
  could not be reached.
* The lab's *results* (the event log, reports) live in
  ``$CMLAB_RESULTS_DIR/<lab>/`` (default ``~/.local/share/cmlab/results``) and
  outlive the lab.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmlab.topology.plan import LabPlan


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


#: The plan of a lab across hosts, in its state folder: its containers are on
#: other Docker Engines, so `status`, `down` and the faults find its hosts here.
PLAN_FILE = "plan.json"


def save_plan(plan: "LabPlan") -> None:
    (lab_state_dir(plan.name) / PLAN_FILE).write_text(plan.to_json())


def saved_plan(lab: str) -> "LabPlan | None":
    """The saved plan of a lab across hosts, None if there is none."""
    from cmlab.topology.plan import LabPlan

    path = state_root() / lab / PLAN_FILE
    return LabPlan.from_json(path.read_text()) if path.is_file() else None


def saved_labs() -> list[str]:
    """Names of the labs across hosts whose plan is saved here."""
    root = state_root()
    return sorted(d.name for d in root.iterdir() if (d / PLAN_FILE).is_file()) if root.is_dir() else []


def results_dir(lab: str) -> Path:
    root = Path(os.environ.get("CMLAB_RESULTS_DIR") or Path.home() / ".local" / "share" / "cmlab" / "results")
    path = root / lab
    path.mkdir(parents=True, exist_ok=True)
    return path
