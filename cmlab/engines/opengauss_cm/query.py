"""Read what ``cm_ctl query`` and ``gs_om -t status`` print, by the headers they print.

Importable alone (no Docker, no engine): ``python -m cmlab.engines.opengauss_cm.query
FILE`` (or ``cmlab parse-cm-query FILE``) prints the parse as JSON.

How the text is read
--------------------
Sections are headed ``[ name ]``. A table section's first line is its header, whose
words name the columns in order (``node node_ip instance state``); with ``-C`` the
replicas of a shard share one row, groups separated by ``|`` under a header repeated
per group. Each header word stands for a fixed run of fields, printed by
``CM/src/cm_ctl/ctl_query.cpp`` (DN rows: ``PrintDnStatus...``; CMS rows: the
``%-2u %-*s [%-15s] %-4u [datadir]`` row; resources: ``[ Defined Resource State ]``)
and by OM (``openGauss-OM/script/gspylib/common/DbClusterInfo.py``, the status
without CM):

==========  =========================================================================
``node``    ``[AZ] node_id node_name`` (the AZ with ``-z ALL``: a first token that is
            not a number; pass ``az=True`` for an AZ named by digits alone)
``node_ip`` one token, whatever it looks like (published samples mask it: ``NodeIp_1``,
            ``xx.xx.xx.xx``)
``port``    OM's own column, *before* the instance: ``5432      6001 /data ...``
``res_name`` the resource's name
``instance`` ``instance_id``, then CM's ``-p`` port (a number) and ``-d`` data
            directory (a path: it starts with ``/``) when printed
``state``   CMS/ETCD/resources: the state; DN: ``[static role P|S|C|R] dynamic role
            db state[(detail)]``: dynamic roles from ``cm_common/cm_misc.cpp``
            (``datanode_role_map_string``: two-word ``Main Standby``, ``Cascade
            Standby``; the one-word ``Cascade`` of older OM), ``%-7s``-padded
            (``Down    Manually stopped``); the detail is the build progress
            (``Building(45%)``) or the rebuild reason (``Need repair(WAL)``)
==========  =========================================================================

A row that does not fit its header raises :class:`CmQueryParseError` with the line
number; a field the output does not carry is None. Unknown sections (GTM,
Coordinator, Kerberos, Fenced UDF...) are kept as raw lines, not read.

Forms covered, each with a sample in ``tests/unit/data/cm-query-samples/`` (its
source named there): ``cm_ctl query -Cvidp``, ``-Cvipd``, ``-Cvid``, ``-Cvd``,
``-Cv``, ``-Cvidpz ALL``; ``gs_om -t status --detail`` with CM (the ``cm_ctl`` form)
and without CM (OM's ``node node_ip port instance state``); ``gs_om -t status --all``
(``key : value`` blocks); the ETCD section of CM before DCC, the resource section of
resource pooling; ``cm_ctl: can't connect to cm_server.`` after some sections (the
rows before it are kept, ``connected`` is False).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field

#: Dynamic DN roles (``datanode_role_map_string``), longest first so that a two-word
#: role is matched before its last word; ``Cascade`` alone is older OM's word.
DYNAMIC_ROLES = ("Main Standby", "Cascade Standby", "Primary", "Standby", "Pending", "Normal", "Down",
                 "Unknown", "Secondary", "Deleted", "ReadOnly", "Offline", "Cascade")
#: Static DN roles (``datanode_static_role_map_string``).
STATIC_ROLES = {"P": "primary", "S": "standby", "C": "cascade standby", "R": "secondary"}
NOT_CONNECTED = "can't connect to cm_server"
#: Lines that end what cm_ctl could print (``write_runlog(ERROR, ...)`` in
#: ``ctl_query.cpp``; OM's ``[GAUSS-NNNNN]`` errors).
_ERROR = re.compile(r"^(cm_ctl: |\[GAUSS-\d+\]|Maybe cm_server is not running)")
_SECTION = re.compile(r"^\[\s*(.+?)\s*\]$")
_COLUMNS = ("node", "node_ip", "port", "res_name", "instance", "state", "sync_state")
_DN_SECTIONS = ("Datanode State", "DBnode State")


class CmQueryParseError(ValueError):
    """A line that does not fit where it stands.

    :ivar line_no: 1-based line number in the text given to :func:`parse`.
    :ivar line: the line itself.
    :ivar expected: what the header (or the section) called for there.
    """

    def __init__(self, line_no: int, line: str, expected: str):
        self.line_no, self.line, self.expected = line_no, line, expected
        super().__init__(f"line {line_no}: {line.strip()!r}: expected {expected}")


@dataclass(frozen=True)
class CmsState:
    node_id: int
    node: str
    ip: str | None
    instance: int
    datadir: str | None
    state: str  # Primary, Standby, Init, Down, UNKNOWN
    az: str | None = None


@dataclass(frozen=True)
class EtcdState(CmsState):
    """A member of CM's ETCD (CM before DCC), the same columns as a CMS row; its state is
    ``StateLeader``, ``StateFollower`` or ``Down``."""


@dataclass(frozen=True)
class ResourceState:
    """A custom resource instance (``[ Defined Resource State ]``): OnLine, OffLine, Deleted, Unknown."""
    node_id: int
    node: str
    ip: str | None
    name: str
    instance: int
    state: str
    az: str | None = None


@dataclass(frozen=True)
class DnState:
    node_id: int
    node: str
    ip: str | None
    instance: int
    port: int | None
    datadir: str | None
    static_role: str | None  # P, S, C, R; None when the output has none
    dynamic_role: str  # Primary, Standby, Cascade Standby, Main Standby, Pending, Down...
    state: str  # Normal, Need repair, Building, Manually stopped... ("Unknown" when blank)
    detail: str = ""  # the parenthesised reason or progress: "WAL", "45%"
    az: str | None = None
    shard: int = 0  # the row of -C output: the replicas of one shard share it

    @property
    def cascade(self) -> bool:
        return self.dynamic_role in ("Cascade Standby", "Cascade")


@dataclass
class CmQuery:
    """Everything the output said. ``connected`` is False when cm_ctl could not reach a
    CMS; ``error`` is the error text it printed (rows printed before it are kept)."""

    connected: bool = True
    error: str | None = None
    cluster: dict[str, str] = field(default_factory=dict)
    cms: list[CmsState] = field(default_factory=list)
    etcd: list[EtcdState] = field(default_factory=list)
    datanodes: list[DnState] = field(default_factory=list)
    resources: list[ResourceState] = field(default_factory=list)
    other_sections: dict[str, list[str]] = field(default_factory=dict)
    #: Lines before the first section: a pasted prompt and command, a tool's progress.
    preamble: list[str] = field(default_factory=list)

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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ---- fields ---------------------------------------------------------------------------------

class _Row:
    """The tokens of one row group, consumed left to right by the header's columns."""

    def __init__(self, text: str, line_no: int, line: str):
        self.tokens, self.i, self.line_no, self.line = text.split(), 0, line_no, line

    def fail(self, expected: str) -> CmQueryParseError:
        return CmQueryParseError(self.line_no, self.line, expected)

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail(what)
        self.i += 1
        return tok

    def number(self, what: str) -> int:
        tok = self.take(what)
        if not tok.isdigit():
            self.i -= 1
            raise self.fail(f"{what} (a number), not {tok!r}")
        return int(tok)

    def rest(self) -> list[str]:
        out, self.i = self.tokens[self.i:], len(self.tokens)
        return out


def _node(row: _Row, az: bool | None) -> tuple[str | None, int, str]:
    first = row.peek()
    has_az = az if az is not None else (first is not None and not first.isdigit())
    zone = row.take("the AZ name") if has_az else None
    return zone, row.number("the node id"), row.take("the node name")


def _path(row: _Row) -> str | None:
    tok = row.peek()
    if tok is not None and tok.startswith("/"):
        row.i += 1
        return tok
    return None


def _dn_state(row: _Row) -> tuple[str | None, str, str, str]:
    words = row.rest()
    static = words.pop(0) if words and words[0] in STATIC_ROLES else None
    text = " ".join(words)
    dynamic = next((r for r in DYNAMIC_ROLES if text == r or text.startswith(r + " ") or text.startswith(r + "(")), None)
    if dynamic is None:
        raise row.fail(f"[static role {'|'.join(STATIC_ROLES)}] and a dynamic role ({', '.join(DYNAMIC_ROLES)})")
    state = text[len(dynamic):].strip() or "Unknown"
    m = re.fullmatch(r"(.*?)\s*\((.*)\)", state)
    detail = ""
    if m:
        state, detail = m.group(1).strip() or "Unknown", m.group(2).strip()
    return static, dynamic, state, detail


def _read_group(kind: str, columns: list[str], text: str, line_no: int, line: str, az: bool | None, shard: int):
    row = _Row(text, line_no, line)
    got: dict = {"ip": None, "port": None, "datadir": None}
    for col in columns:
        if col == "node":
            got["az"], got["node_id"], got["node"] = _node(row, az)
        elif col == "node_ip":
            got["ip"] = row.take("the node IP")
        elif col == "port":
            got["port"] = row.number("the port")
        elif col == "res_name":
            got["name"] = row.take("the resource name")
        elif col == "instance":
            got["instance"] = row.number("the instance id")
            if kind == "dn" and "port" not in columns and (row.peek() or "").isdigit():
                got["port"] = row.number("the port")
            if kind != "resource":
                got["datadir"] = _path(row)
        elif col == "state":
            if kind == "dn":
                got["static_role"], got["dynamic_role"], got["state"], got["detail"] = _dn_state(row)
            else:
                words = row.rest()
                if not words:
                    raise row.fail("a state")
                got["state"] = " ".join(words)
    if row.peek() is not None:
        raise row.fail(f"nothing after the {columns[-1]} column, not {' '.join(row.rest())!r}")
    if kind == "dn":
        return DnState(got["node_id"], got["node"], got["ip"], got["instance"], got["port"], got["datadir"],
                       got["static_role"], got["dynamic_role"], got["state"], got["detail"], got["az"], shard)
    if kind == "resource":
        return ResourceState(got["node_id"], got["node"], got["ip"], got["name"], got["instance"], got["state"], got["az"])
    cls = CmsState if kind == "cms" else EtcdState
    return cls(got["node_id"], got["node"], got["ip"], got["instance"], got["datadir"], got["state"], got["az"])


# ---- sections -------------------------------------------------------------------------------

def _groups(line: str) -> list[str]:
    """Row groups split at ``|``; a trailing separator leaves no empty group."""
    parts = [p for p in line.split("|")]
    while parts and not parts[-1].strip():
        parts.pop()
    return parts


def _header(line: str, line_no: int) -> list[str]:
    groups = [g.split() for g in _groups(line)]
    if not groups or any(g != groups[0] for g in groups) or not groups[0] or groups[0][0] != "node":
        raise CmQueryParseError(line_no, line, "a header row: 'node ...' (the same columns in every | group)")
    unknown = [w for w in groups[0] if w not in _COLUMNS]
    if unknown:
        raise CmQueryParseError(line_no, line, f"header words among {', '.join(_COLUMNS)}, not {unknown}")
    return groups[0]


_KINDS = {"CMServer State": "cms", "ETCD State": "etcd", "Defined Resource State": "resource",
          **{s: "dn" for s in _DN_SECTIONS}}


def _lines(text: str) -> list[tuple[int, str]]:
    return [(i, line.rstrip()) for i, line in enumerate(text.splitlines(), 1)]


def _is_rule(line: str) -> bool:
    s = line.strip()
    return bool(s) and set(s) <= {"-"}


def parse(text: str, az: bool | None = None) -> CmQuery:
    """Parse the output of ``cm_ctl query -v[C][i][d][p][z ALL]`` or ``gs_om -t status
    --detail`` / ``--all``.

    :param az: whether rows start with an AZ name (``-z ALL``); None reads it from
        each row (a first token that is not a number).
    :raises CmQueryParseError: a line does not fit its section (the line number, the
        line and what its header called for).
    """
    lines = _lines(text)
    if any(re.match(r"^\s*node_name\s*:", line) for _, line in lines):
        return _parse_all(lines)
    q = CmQuery()
    kind: str | None = None
    name = ""
    columns: list[str] | None = None
    shard = 0
    for no, line in lines:
        s = line.strip()
        if not s or _is_rule(s):
            continue
        if _ERROR.match(s):
            q.error = f"{q.error}\n{s}" if q.error else s
            if NOT_CONNECTED in s:
                q.connected = False
            kind = None
            continue
        m = _SECTION.match(s)
        if m:
            name, columns = m.group(1), None
            kind = "cluster" if name == "Cluster State" else _KINDS.get(name, "other")
            if kind == "other":
                q.other_sections.setdefault(name, [])
            continue
        if kind is None:
            if q.error:
                q.error += "\n" + s
            elif not name:
                q.preamble.append(line)
            else:
                raise CmQueryParseError(no, line, "a section header '[ ... ]' after an error")
            continue
        if kind == "other":
            q.other_sections[name].append(line)
        elif kind == "cluster":
            key, sep, value = s.partition(":")
            if not sep:
                raise CmQueryParseError(no, line, "'key : value' in [ Cluster State ]")
            q.cluster[key.strip()] = value.strip()
        elif columns is None:
            columns = _header(line, no)
        else:
            for group in _groups(line):
                row = _read_group(kind, columns, group, no, line, az, shard)
                {"cms": q.cms, "etcd": q.etcd, "resource": q.resources, "dn": q.datanodes}[kind].append(row)
            if kind == "dn":
                shard += 1
    if not name and not q.error:
        raise CmQueryParseError(len(lines), lines[-1][1] if lines else "", "a section '[ ... ]' or a cm_ctl error")
    return q


# ---- gs_om -t status --all: "key : value" blocks --------------------------------------------

def _parse_all(lines: list[tuple[int, str]]) -> CmQuery:
    """``gs_om -t status --all``: the cluster block, then per node a ``node_name`` block
    and one block per instance (``type : CMServer | Datanode | ETCD | Fenced UDF``);
    the DN's static role and port are not printed (None)."""
    q = CmQuery()
    blocks: list[list[tuple[int, str, str]]] = [[]]
    section: str | None = None
    started = False
    for no, line in lines:
        s = line.strip()
        m = _SECTION.match(s)
        if m:
            section = m.group(1)
            q.other_sections.setdefault(section, [])
            continue
        if section:
            if s:
                q.other_sections[section].append(line)
            continue
        if not s or _is_rule(s):
            started = True
            if blocks[-1]:
                blocks.append([])
            continue
        if not started and ":" not in s:
            q.preamble.append(line)
            continue
        if _ERROR.match(s):
            q.error = s
            q.connected = NOT_CONNECTED not in s
            continue
        key, sep, value = s.partition(":")
        if not sep:
            raise CmQueryParseError(no, line, "'key : value'")
        blocks[-1].append((no, key.strip(), value.strip()))
    names: dict[str, str] = {}
    shard = 0
    for block in filter(None, blocks):
        keys = {k: v for _, k, v in block}
        first_no = block[0][0]
        try:
            if "cluster_state" in keys:
                q.cluster.update(keys)
            elif "node_name" in keys:
                names[keys["node"]] = keys["node_name"]
            elif keys.get("type") == "CMServer":
                q.cms.append(CmsState(int(keys["node"]), names.get(keys["node"], ""), keys.get("node_ip"),
                                      int(keys["instance_id"]), keys.get("data_path"), keys["instance_state"]))
            elif keys.get("type") == "ETCD":
                q.etcd.append(EtcdState(int(keys["node"]), names.get(keys["node"], ""), keys.get("node_ip"),
                                        int(keys["instance_id"]), keys.get("data_path"), keys["state"]))
            elif keys.get("type") == "Datanode":
                q.datanodes.append(DnState(int(keys["node"]), names.get(keys["node"], ""), keys.get("node_ip"),
                                           int(keys["instance_id"]), None, keys.get("data_path"), None,
                                           keys["instance_state"], keys.get("HA_state") or "Unknown",
                                           "" if keys.get("reason") in (None, "Normal") else keys["reason"],
                                           None, shard))
                shard += 1
        except (KeyError, ValueError) as exc:
            raise CmQueryParseError(first_no, block[0][1], f"a complete {keys.get('type', 'instance')} block ({exc})") from None
    return q


def main(argv: list[str] | None = None) -> int:
    """``python -m cmlab.engines.opengauss_cm.query FILE|-``: the parse as JSON; exit 2 on a parse error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cmlab.engines.opengauss_cm.query FILE|-", file=sys.stderr)
        return 2
    text = sys.stdin.read() if args[0] == "-" else open(args[0], encoding="utf-8").read()
    try:
        print(parse(text).to_json())
    except CmQueryParseError as exc:
        print(f"{args[0]}:{exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
