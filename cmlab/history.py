"""The history of one trial: every write, every observer sample and every
event, on the host's monotonic clock (seconds). Saved as JSON lines
(``history.jsonl``) so that checkers and reports can run again from disk
(``cmlab report RUN_DIR``) with no lab running.

Record types (the ``type`` key):

* ``write``: ``writer``, ``seq``, ``sent``, ``acked`` (null if not), ``node``
  (who acknowledged), ``error``, ``unknown`` (outcome unknown);
* ``leader``: ``t``, ``dt``, ``leader`` (null: the manager names none);
* ``role``: ``t``, ``dt``, ``node``, ``role``, ``healthy``, ``followers``;
* ``vip``: ``t``, ``dt``, ``holders`` (VIP name -> nodes);
* ``event``: ``t`` and the event's fields (fault-applied, healed, trial marks:
  trial-start, trial-not-ready-after-heal, trial-no-primary-after-heal,
  trial-writes-unread with ``node`` and ``reason``);
* ``meta``: trial facts (scenario, old primary, cadences, probe CPU...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


#: Writers whose writes a client of the cluster makes: through each VIP, or,
#: in a lab without VIPs, through the one that seeks the primary itself. The
#: client metrics (RTO, outages, lost writes seen by clients) read these.
CLIENT_WRITER_PREFIXES = ("vip:", "seek:")
#: The name of the primary-seeking writer of a lab without VIPs.
SEEKING_WRITER = "seek:primary"


def is_client_writer(name: str) -> bool:
    return name.startswith(CLIENT_WRITER_PREFIXES)


@dataclass(frozen=True)
class WriteRec:
    writer: str
    seq: int
    sent: float
    acked: float | None
    node: str | None
    error: str | None = None
    unknown: bool = False


@dataclass
class History:
    writes: list[WriteRec] = field(default_factory=list)
    leader: list[tuple[float, float, str | None]] = field(default_factory=list)
    roles: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)
    vips: list[tuple[float, float, dict[str, list[str]]]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def event(self, name: str) -> dict[str, Any] | None:
        """The first event called ``name``."""
        return next((e for e in self.events if e.get("event") == name), None)

    def save(self, path: Path) -> None:
        with open(path, "w") as f:
            f.write(json.dumps({"type": "meta", **self.meta}) + "\n")
            for e in self.events:
                f.write(json.dumps({"type": "event", **e}, default=str) + "\n")
            for t, dt, leader in self.leader:
                f.write(json.dumps({"type": "leader", "t": t, "dt": dt, "leader": leader}) + "\n")
            for t, dt, role in self.roles:
                f.write(json.dumps({"type": "role", "t": t, "dt": dt, **role}) + "\n")
            for t, dt, holders in self.vips:
                f.write(json.dumps({"type": "vip", "t": t, "dt": dt, "holders": holders}) + "\n")
            for w in self.writes:
                f.write(json.dumps({"type": "write", **w.__dict__}) + "\n")

    @classmethod
    def load(cls, path: Path) -> "History":
        h = cls()
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            kind = r.pop("type")
            if kind == "meta":
                h.meta = r
            elif kind == "event":
                h.events.append(r)
            elif kind == "leader":
                h.leader.append((r["t"], r["dt"], r["leader"]))
            elif kind == "role":
                t, dt = r.pop("t"), r.pop("dt")
                h.roles.append((t, dt, r))
            elif kind == "vip":
                h.vips.append((r["t"], r["dt"], r["holders"]))
            elif kind == "write":
                h.writes.append(WriteRec(**r))
        return h
