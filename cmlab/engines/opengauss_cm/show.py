"""Parse ``cm_ctl show``: the CMS's view of the network heartbeats between
nodes, of each node's disk heartbeat (share-disk mode) and of which node
holds each float IP (VIP).

Format, as ``CM/src/cm_ctl/ctl_show.cpp`` and ``src/cm_common/cm_rhb.cpp``
print it (reference opengauss-cm.md §4 and §5)::

    [  Network Connect State  ]

    Network timeout:       6s
    Current CMServer time: 2026-11-21 09:30:00
    Network stat('Y' means connected, otherwise 'N'):
    |  \\  |  Y  |  N  |
    |  Y  |  \\  |  Y  |
    |  N  |  Y  |  \\  |

    [  Node Disk HB State  ]

    Node disk hb timeout:    200s
    Current CMServer time: 2026-11-21 09:30:00
    Node disk hb stat('Y' means connected, otherwise 'N'):
    |  Y  |  Y  |  N  |

    [  FloatIp Network State  ]

    node        instance         base_ip      float_ip_name float_ip
    ------------------------------------------------------------------
    1  node1    6001     10.0.0.11    VIP_az1       10.0.0.100

Matrix rows and disk cells are in node order (the static config's); a
header row ``| D\\S |  1  |  2  |`` (in a comment of cm_rhb.cpp, not printed
by the version read) is accepted. Only float IPs whose NIC state is up are
listed. A cluster without float IPs prints no third section; without a share
disk, the second section may be empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cmlab.engines.opengauss_cm.query import NOT_CONNECTED

_SECTION = re.compile(r"^\[\s*(.+?)\s*\]$")
_TIMEOUT = re.compile(r"timeout:\s*(\d+)s")


@dataclass(frozen=True)
class FloatIpState:
    """One float IP that is up: on ``node`` (id and name) for DN ``instance``."""

    node_id: int
    node: str
    instance: int
    base_ip: str
    name: str
    float_ip: str


@dataclass
class CmShow:
    """What ``cm_ctl show`` said. ``connected`` is False when no CMS answered.

    :param network: rows of the heartbeat matrix in node order, each cell
        True (connected), False (timed out) or None (the node itself).
    :param disk_hb: per node in node order, True when its disk heartbeat is fresh.
    :param network_timeout_s: seconds; ``disk_timeout_s``: seconds (CM's ``disk_timeout``).
    """

    connected: bool = True
    network_timeout_s: int | None = None
    network: list[list[bool | None]] = field(default_factory=list)
    disk_timeout_s: int | None = None
    disk_hb: list[bool] = field(default_factory=list)
    float_ips: list[FloatIpState] = field(default_factory=list)

    def cut_links(self) -> list[tuple[int, int]]:
        """``(row, column)`` node positions (1-based, node order) whose heartbeat timed out."""
        return [(i + 1, j + 1) for i, row in enumerate(self.network) for j, cell in enumerate(row) if cell is False]

    def vip_holders(self) -> dict[str, list[str]]:
        """Float IP address -> the nodes CM has it up on."""
        out: dict[str, list[str]] = {}
        for f in self.float_ips:
            out.setdefault(f.float_ip, []).append(f.node)
        return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _flag(cell: str) -> bool | None:
    if cell == "Y":
        return True
    if cell == "N":
        return False
    if cell == "\\":
        return None
    raise ValueError(f"not Y, N or \\: {cell!r}")


def parse_show(text: str) -> CmShow:
    """Parse the whole output of ``cm_ctl show``.

    :raises ValueError: a matrix cell or a float-IP row cannot be read (the
        message quotes it).
    """
    if NOT_CONNECTED in text:
        return CmShow(connected=False)
    show = CmShow()
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or set(line) <= {"-"}:
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        timeout = _TIMEOUT.search(line)
        if section == "Network Connect State":
            if timeout:
                show.network_timeout_s = int(timeout.group(1))
            elif line.startswith("|") and "D\\S" not in line:
                cells = _cells(line)
                if cells and cells[0].isdigit():  # a row label next to the header row
                    cells = cells[1:]
                show.network.append([_flag(c) for c in cells])
        elif section == "Node Disk HB State":
            if timeout:
                show.disk_timeout_s = int(timeout.group(1))
            elif line.startswith("|"):
                show.disk_hb = [bool(_flag(c)) for c in _cells(line)]
        elif section == "FloatIp Network State":
            if line.startswith("node"):
                continue  # the header
            tokens = line.split()
            if len(tokens) != 6 or not tokens[0].isdigit() or not tokens[2].isdigit():
                raise ValueError(f"not a float IP row (node id, node, instance, base_ip, name, float_ip): {line!r}")
            show.float_ips.append(FloatIpState(int(tokens[0]), tokens[1], int(tokens[2]), tokens[3], tokens[4], tokens[5]))
    return show
