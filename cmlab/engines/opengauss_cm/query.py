"""Parse ``cm_ctl query -Cvidp`` into structured status.

Format (../shared/reference/opengauss-cm.md §2, from
``CM/src/cm_ctl/ctl_query.cpp`` and ``ctl_query_base.cpp``): sections headed
``[  CMServer State   ]``, ``[ Defined Resource State ]``, ``[   Cluster
State   ]`` and ``[  Datanode State   ]``; with ``-C`` the replicas of one
shard print on one line joined by `` | ``; each DN field is ``nodeid nodename
[ip] instanceId [port] [datadir] <static role P|S|C|R> <dynamic role> <db
state>``; with ``-z ALL`` every CMS and DN row starts with its AZ's name
(seen on the real cm_ctl 6.0.0: ``az1 1  og1 10.213.20.11    6001 ...``;
samples in tests/unit/data/opengauss-cm-real/). When no CMS answers, cm_ctl
prints ``cm_ctl: can't connect to cm_server.``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Dynamic roles, longest first (two-word roles before their last word).
DYNAMIC_ROLES = ("Main Standby", "Cascade Standby", "Primary", "Standby", "Pending", "Down", "Unknown",
                 "Secondary", "Deleted", "ReadOnly", "Offline")
STATIC_ROLES = {"P": "primary", "S": "standby", "C": "cascade standby", "R": "secondary"}
NOT_CONNECTED = "can't connect to cm_server"


@dataclass(frozen=True)
class CmsState:
    node_id: int
    node: str
    ip: str
    instance: int
    state: str  # Primary, Standby, Down, Unknown
    az: str | None = None  # with -z ALL


@dataclass(frozen=True)
class DnState:
    node_id: int
    node: str
    ip: str
    instance: int
    port: int | None
    datadir: str | None
    static_role: str  # P, S, C, R
    dynamic_role: str  # Primary, Standby, Cascade Standby, Down...
    state: str  # Normal, Need repair, Building, Manually stopped...
    detail: str = ""  # the parenthesised reason or progress: "System id not matched", "45%"
    az: str | None = None  # with -z ALL


@dataclass(frozen=True)
class ResourceState:
    node_id: int
    node: str
    ip: str
    name: str
    instance: int
    state: str  # OnLine, OffLine, Deleted, Unknown


@dataclass
class CmQuery:
    """Everything ``cm_ctl query -Cvidp`` said. ``connected`` is False when
    no cm_server answered (then the lists are empty)."""

    connected: bool = True
    cluster: dict[str, str] = field(default_factory=dict)
    cms: list[CmsState] = field(default_factory=list)
    datanodes: list[DnState] = field(default_factory=list)
    resources: list[ResourceState] = field(default_factory=list)

    @property
    def cluster_state(self) -> str:
        return self.cluster.get("cluster_state", "Unknown")

    @property
    def pausing(self) -> bool:
        return self.cluster.get("pausing", "No") == "Yes"

    def primaries(self) -> list[DnState]:
        return [d for d in self.datanodes if d.dynamic_role == "Primary"]

    def cms_primary(self) -> CmsState | None:
        return next((c for c in self.cms if c.state == "Primary"), None)


_HEADER = re.compile(r"^\[\s*(.+?)\s*\]\s*$")


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        if current is not None and line.strip() and not set(line.strip()) <= {"-"}:
            current.append(line.rstrip())
    return out


def _is_header_row(line: str) -> bool:
    return line.split()[:2] == ["node", "node_ip"] or line.lstrip().startswith("node ")


def _az_split(tokens: list[str]) -> tuple[str | None, list[str]]:
    """``-z ALL`` rows start with the AZ's name, then the node id."""
    if len(tokens) > 1 and not tokens[0].isdigit() and tokens[1].isdigit():
        return tokens[0], tokens[1:]
    return None, tokens


def parse_dn_field(text: str) -> DnState:
    """One DN field, e.g. ``1  host40 10.243.40.20    6001 /usr1/data/dn1 P Primary Normal``
    (with ``-z ALL``: ``az1 1  host40 ...``).

    :raises ValueError: the field has no static role or no known dynamic role.
    """
    az, tokens = _az_split(text.split())
    node_id, node = int(tokens[0]), tokens[1]
    i = 2
    ip = ""
    if i < len(tokens) and re.fullmatch(r"[\d.:a-fA-F]+", tokens[i]) and ("." in tokens[i] or ":" in tokens[i]):
        ip, i = tokens[i], i + 1
    instance, i = int(tokens[i]), i + 1
    port = None
    if i < len(tokens) and tokens[i].isdigit():
        port, i = int(tokens[i]), i + 1
    datadir = None
    if i < len(tokens) and tokens[i].startswith("/"):
        datadir, i = tokens[i], i + 1
    if i >= len(tokens) or tokens[i] not in STATIC_ROLES:
        raise ValueError(f"no static role (P/S/C/R) in DN field: {text!r}")
    static, rest = tokens[i], " ".join(tokens[i + 1:])
    dynamic = next((r for r in DYNAMIC_ROLES if rest == r or rest.startswith(r + " ")), None)
    if dynamic is None:
        raise ValueError(f"unknown dynamic role in DN field: {text!r}")
    state = rest[len(dynamic):].strip() or "Unknown"
    detail = ""
    m = re.fullmatch(r"(.*?)\s*\((.*)\)", state)
    if m:
        state, detail = m.group(1).strip(), m.group(2).strip()
    return DnState(node_id, node, ip, instance, port, datadir, static, dynamic, state, detail, az)


def parse(text: str) -> CmQuery:
    """Parse the whole output of ``cm_ctl query -Cvidp`` (or -Cvid).

    :raises ValueError: a DN row cannot be read (the message quotes it).
    """
    if NOT_CONNECTED in text:
        return CmQuery(connected=False)
    q = CmQuery()
    sections = _sections(text)
    for line in sections.get("CMServer State", []):
        if _is_header_row(line):
            continue
        az, tokens = _az_split(line.split())
        ip_at = 2 if len(tokens) > 2 and "." in tokens[2] else None
        instance = int(tokens[3] if ip_at else tokens[2])
        q.cms.append(CmsState(int(tokens[0]), tokens[1], tokens[2] if ip_at else "", instance, tokens[-1], az))
    for line in sections.get("Defined Resource State", []):
        if _is_header_row(line):
            continue
        t = line.split()
        q.resources.append(ResourceState(int(t[0]), t[1], t[2], t[3], int(t[4]), t[-1]))
    for line in sections.get("Cluster State", []):
        if ":" in line:
            key, _, value = line.partition(":")
            q.cluster[key.strip()] = value.strip()
    for line in sections.get("Datanode State", []):
        if _is_header_row(line):
            continue
        for part in line.split(" | "):
            if part.strip():
                q.datanodes.append(parse_dn_field(part))
    return q
