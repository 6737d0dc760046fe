"""The lab's event log: JSON lines, one event per line, on one clock.

Every event carries ``t``, the host's monotonic clock in seconds
(``time.monotonic()``, CLOCK_MONOTONIC: the same clock in every process on
the host, so the CLI, the tests and the probes can be compared), and
``wall``, the UTC wall time for people. The measurement layer reads it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cmlab.state import results_dir


class EventLog:
    """Appends events to ``<results>/<lab>/events.jsonl`` (one write per event,
    appended atomically, so several processes may log at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_lab(cls, lab: str) -> "EventLog":
        return cls(results_dir(lab) / "events.jsonl")

    def append(self, event: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
        """Record ``event`` at monotonic time ``t`` (seconds; now when None)."""
        record = {"event": event, "t": time.monotonic() if t is None else t,
                  "wall": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **fields}
        line = (json.dumps(record, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return record

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
