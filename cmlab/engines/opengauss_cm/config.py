"""Configuration of an opengauss-cm lab, generated from the plan.

* the cluster XML that ``gs_om -t generateconf`` turns into the static config
  (the community CM image does exactly that: opengauss-cm.md §1 step 5);
  layout from the documented two-city three-centre example (seeds/000, "CM支持VIP仲裁");
* ``cm_agent.conf`` / ``cm_server.conf`` overrides (opengauss-cm.md §3), applied
  per node with ``cm_ctl set --param ... -n <own id>`` since there is no ssh (§1 "Limits");
* ``cm_resource.json`` for the VIPs, with the key ``resources_type`` that the
  runtime parser reads (``cm_json_config.cpp``), not the doc's ``resource_type`` (§9).

Node ids are 1-based in topology order; DN instance ids are 6001, 6002... in
the order of the database nodes; CMS instance ids 1..n.
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from cmlab.engines.opengauss_cm.parameters import CmParameters
from cmlab.topology.plan import LabPlan, NodePlan
from cmlab.topology.schema import Role

APP = "/usr/local/opengauss/app"
TOOLS = "/usr/local/opengauss/tools"
DATA = "/var/lib/opengauss/data"
DN_DIR = f"{DATA}/dn1"
LOG = "/var/lib/opengauss/log"
TMP = "/var/lib/opengauss/tmp"
CM_DIR = "/var/lib/opengauss/cm"
CORE = "/var/lib/opengauss/corefile"
CLUSTER_XML = "/home/omm/cluster.xml"
RESOURCE_JSON = f"{CM_DIR}/cm_agent/cm_resource.json"
FIRST_DN_INSTANCE = 6001


#: CM's limit: a primary and at most 8 standbys (opengauss-cm.md, issue 6).
MAX_STANDBYS = 8


def node_id(plan: LabPlan, node: str) -> int:
    return [n.name for n in plan.nodes].index(node) + 1


def database_nodes(plan: LabPlan, p: CmParameters) -> list[NodePlan]:
    """DN nodes, the primary first (CM's dataNode1 lists the primary's node first)."""
    dns = plan.nodes_with(Role.database)
    primary = p.primary or dns[0].name
    return sorted(dns, key=lambda n: n.name != primary)


def dn_instance(plan: LabPlan, p: CmParameters, node: str) -> int:
    return FIRST_DN_INSTANCE + [n.name for n in database_nodes(plan, p)].index(node)


def cluster_xml(plan: LabPlan, p: CmParameters) -> str:
    """The cluster XML. The first database node's DEVICE carries the DN and CMS
    definitions (dataNode1 = primary dir, then each standby and its dir)."""
    root = ET.Element("ROOT")
    cluster = ET.SubElement(root, "CLUSTER")

    def param(parent: ET.Element, name: str, value: object) -> None:
        ET.SubElement(parent, "PARAM", name=name, value=str(value))

    param(cluster, "clusterName", plan.name)
    param(cluster, "nodeNames", ",".join(n.name for n in plan.nodes))
    param(cluster, "gaussdbAppPath", APP)
    param(cluster, "gaussdbLogPath", LOG)
    param(cluster, "tmpMppdbPath", TMP)
    param(cluster, "gaussdbToolPath", TOOLS)
    param(cluster, "corePath", CORE)
    param(cluster, "clusterType", "single-inst")
    param(cluster, "backIp1s", ",".join(str(n.address) for n in plan.nodes))
    # No floatIpN / floatIpMap1: OM 6.0.0 checks every floatIpMap1 entry as an IP address
    # (openGauss-OM DbClusterInfo.compress_ips; GAUSS-50603 on the documented "floatIp1,..." form,
    # seen on the real binaries), and the static config it makes carries no float IP. CM reads its
    # VIPs from cm_resource.json (resource_json below), as `cm_ctl res --add` writes it.

    dns = database_nodes(plan, p)
    cms = plan.nodes_with(Role.quorum)
    devices = ET.SubElement(root, "DEVICELIST")
    for n in plan.nodes:
        az = plan.az(n.az)
        dev = ET.SubElement(devices, "DEVICE", sn=n.name)
        param(dev, "name", n.name)
        param(dev, "azName", az.name)
        param(dev, "azPriority", az.priority)
        param(dev, "backIp1", n.address)
        param(dev, "sshIp1", n.address)
        if n.name in p.cascade_standbys:
            param(dev, "cascadeRole", "on")  # openGauss docs, Installation Guide, the XML configuration file
        if n.name == dns[0].name:
            param(dev, "dataNum", 1)
            param(dev, "dataPortBase", p.dn_port)
            standbys = [x for s in dns[1:] for x in (s.name, DN_DIR)]
            param(dev, "dataNode1", ",".join([DN_DIR, *standbys]))
            param(dev, "dataNode1_syncNum", p.sync_num)
            param(dev, "dataListenIp1", ",".join(str(d.address) for d in dns))
            param(dev, "cmsNum", 1)
            param(dev, "cmServerPortBase", p.cm_server_port)
            param(dev, "cmServerlevel", 1)
            param(dev, "cmServerListenIp1", ",".join(str(c.address) for c in cms))
            param(dev, "cmServerHaIp1", ",".join(str(c.address) for c in cms))
            param(dev, "cmServerRelation", ",".join(c.name for c in cms))
        param(dev, "cmDir", CM_DIR)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _disk_path(plan: LabPlan, name: str | None) -> str:
    return plan.disk(name).path if name else ""


def third_party_gateway(plan: LabPlan) -> str:
    """The arbiter address of two-node mode: the router when there is one
    (it answers on every AZ), else the first AZ's gateway (the host)."""
    az = plan.azs[0]
    return str(az.router_address or az.gateway)


def agent_overrides(plan: LabPlan, p: CmParameters) -> dict[str, object]:
    out: dict[str, object] = {
        "agent_heartbeat_timeout": p.agent_heartbeat_timeout,
        "agent_phony_dead_check_interval": p.agent_phony_dead_check_interval,
        "enable_fence_dn": "on" if p.enable_fence_dn else "off",
        "enable_ssl": "off",  # as the community image does
        "disk_timeout": p.disk_timeout,
        # cm_agent reads its own copy (cm_agent/cma_common.cpp): with it on, the agent checks its
        # DN every second and stops a stopped (T state) DN at once (cma_phony_dead_check.cpp).
        "enable_e2e_rto": 1 if p.enable_e2e_rto else 0,
        # The sample's '' makes the fenced UDF master bind "/.gaussUDF.socket", which omm
        # may not: it exits and cm_agent starts another every second (seen on the real
        # binaries: a core's worth of CPU per lab; cm_agent/cma_instance_management.cpp:
        # start_fenced_UDF_check). The DNs' socket directory, as OM's install sets it.
        "unix_socket_directory": TMP,
    }
    if p.voting_disk:
        out["voting_disk_path"] = _disk_path(plan, p.voting_disk)
    if p.event_triggers:
        out["event_triggers"] = event_triggers()
    return {**out, **p.cm_agent}


EVENTS_DIR = "/usr/local/opengauss/cmlab/events"
EVENTS_FILE = "/var/lib/opengauss/cmlab-events.jsonl"


def event_triggers() -> str:
    """cm_agent's ``event_triggers``: JSON without spaces, at most 1024
    characters, every script an existing absolute path (opengauss-cm.md §6)."""
    value = json.dumps({e: f"{EVENTS_DIR}/{e}.sh" for e in ("on_start", "on_stop", "on_failover", "on_switchover")},
                       separators=(",", ":"))
    assert len(value) <= 1024
    return value


def server_overrides(plan: LabPlan, p: CmParameters) -> dict[str, object]:
    out: dict[str, object] = {
        "instance_heartbeat_timeout": p.instance_heartbeat_timeout,
        "cmserver_ha_heartbeat_timeout": p.cmserver_ha_heartbeat_timeout,
        "phony_dead_effective_time": p.phony_dead_effective_time,
        "dn_arbitrate_mode": p.dn_arbitrate_mode,
        "cluster_starting_aribt_delay": p.cluster_starting_aribt_delay,
        "enable_e2e_rto": 1 if p.enable_e2e_rto else 0,
        "enable_ssl": "off",
        "disk_timeout": p.disk_timeout,
    }
    if p.two_node:
        out["cms_enable_failover_on2nodes"] = "true"
        out["third_party_gateway_ip"] = third_party_gateway(plan)
        out["cms_network_isolation_timeout"] = p.cms_network_isolation_timeout
    if p.voting_disk:
        out["voting_disk_path"] = _disk_path(plan, p.voting_disk)
    if p.share_disk:
        out["share_disk_path"] = _disk_path(plan, p.share_disk)
        out["ddb_type"] = 2
    return {**out, **p.cm_server}


def dn_commands(plan: LabPlan, p: CmParameters, node: str) -> list[list[str]]:
    """``gs_guc set`` argv lists for one DN after its ``gs_initdb``, as the
    community CM image's ``install.sh: init_database`` runs them: one
    ``replconninfoN`` per peer DN (HA port = DN port + 1, heartbeat port =
    DN port + 4), trust for every DN's address, ``replication_type=1``,
    ``remote_read_mode=off``, the port, and every address listened on;
    ``most_available_sync`` when the lab asks for it. And the write quorum,
    which OM's install writes and ``gs_initdb`` does not (it leaves
    ``synchronous_standby_names='*'``, one standby of any, whatever
    ``sync_num`` says; seen on the real binaries): ``application_name``
    ``dn_<instance id>`` and ``synchronous_standby_names`` ``ANY <sync_num>``
    of the DN's peers that are not cascade standbys, empty (asynchronous)
    for ``sync_num: 0`` (OM: ``gspylib/component/Kernel/DN_OLAP/DN_OLAP.py``,
    ``configInstance``, which names the standbys the same way)."""
    me = plan.node(node)
    ha, hb = p.dn_port + 1, p.dn_port + 4
    peers = [d for d in database_nodes(plan, p) if d.name != node]
    guc = ["gs_guc", "set", "-D", DN_DIR]
    cmds = [[*guc, "-c", f"replconninfo{i}='localhost={me.address} localport={ha} localheartbeatport={hb} "
                         f"remotehost={d.address} remoteport={ha} remoteheartbeatport={hb}'"]
            for i, d in enumerate(peers, start=1)]
    cmds += [[*guc, "-h", f"host all all {d.address}/32 trust"] for d in database_nodes(plan, p)]
    # max_wal_senders: gs_initdb leaves 4, and each standby streams and is built over one: in the
    # 7-node lab the primary refused the builds of the last standbys ("number of requested standby
    # connections exceeds max_wal_senders (currently 4)", CM then says "Disk damaged"; seen on the
    # real binaries). Two per standby, CM's at most 8 standbys (MAX_STANDBYS) included.
    for setting in ("remote_read_mode=off", "replication_type=1", f"port={p.dn_port}", "listen_addresses='*'",
                    "max_connections=1000", f"max_wal_senders={2 * MAX_STANDBYS}"):
        cmds.append([*guc, "-c", setting])
    if p.most_available_sync:
        cmds.append([*guc, "-c", "most_available_sync=on"])
    cmds.append([*guc, "-c", f"application_name='{application_name(plan, p, node)}'"])
    cmds.append([*guc, "-c", f"synchronous_standby_names='{synchronous_standby_names(plan, p, node)}'"])
    # The probes' md5 rules too, before the first start: set later, each was a gs_guc that waited for
    # cm_agent's own gs_guc to finish and a reload of every DN (8 s of every `up` on the real binaries).
    return cmds + client_settings(plan)


def application_name(plan: LabPlan, p: CmParameters, node: str) -> str:
    """The name a DN's walreceiver gives its primary, as OM names it: ``dn_<instance id>``."""
    return f"dn_{dn_instance(plan, p, node)}"


def synchronous_standby_names(plan: LabPlan, p: CmParameters, node: str) -> str:
    """``ANY <sync_num>(dn_..., ...)`` over the DN's peers that may be synchronous
    (not cascade standbys); "" (asynchronous) for ``sync_num`` 0. Each DN names
    its own peers, so the value holds on whichever DN is promoted."""
    peers = [d.name for d in database_nodes(plan, p) if d.name != node and d.name not in p.cascade_standbys]
    if p.sync_num == 0 or not peers:
        return ""
    return f"ANY {p.sync_num}({','.join(application_name(plan, p, d) for d in peers)})"


#: Keys (or values) cm_server reads that a single-node build's cm_ctl refuses to set, seen on the
#: real binaries: ``cluster_starting_aribt_delay`` ("The parameter ... is incorrect":
#: CM/src/cm_ctl/ctl_param_check.cpp lists it only under ENABLE_MULTIPLE_NODES), and
#: ``ddb_type`` 2, share disk ("outside the valid range ... (0 .. 1)": ctl_param_check.cpp checks
#: ``ddb_type|int|0,1`` while cm_server's GetDdbTypeParam, cms_common.cpp, reads 2 as DB_SHAREDISK).
#: cm_server reads them with get_int_value_from_config.
CM_CTL_UNKNOWN = {"server": ("cluster_starting_aribt_delay", "ddb_type")}


def cm_ctl_accepts(value: str) -> bool:
    """Whether ``cm_ctl set`` takes this value as it is: its first character must
    be a letter, a digit, ``'``, ``(``, ``)``, ``-`` or ``{``, and it holds no
    ``#`` (CM/src/cm_ctl/ctl_param_check.cpp: CheckParameterValueType). A path
    (``/dev/...``) is refused bare."""
    return bool(value) and (value[0].isalnum() or value[0] in "'()-{") and "#" not in value


def written_directly(part: str, key: str, value: str) -> bool:
    """Whether cmlab writes ``key = value`` into ``cm_<part>.conf`` itself instead
    of through ``cm_ctl set``: a key cm_ctl refuses (:data:`CM_CTL_UNKNOWN`), or
    a value it refuses bare. Values are always written bare: cm_agent and
    cm_server read strings with ``get_config_param``, which keeps quotes
    (CM/src/cm_agent/cma_common.cpp, cm_server/cms_monitor_main.cpp), so
    ``voting_disk_path = '/dev/x'`` opened a path with quotes in it ("open disk
    '/dev/cmlab-voting' failed, errno 2") and ``cms_enable_failover_on2nodes =
    'true'`` was not a boolean (seen on the real binaries)."""
    return key in CM_CTL_UNKNOWN.get(part, ()) or not cm_ctl_accepts(value)


def set_commands(plan: LabPlan, p: CmParameters, node: str) -> list[list[str]]:
    """``cm_ctl set --param`` argv lists for one node, values bare (see
    :func:`written_directly`: the engine writes some of them into the file)."""
    nid = str(node_id(plan, node))
    cmds = [["cm_ctl", "set", "--param", "--agent", "-k", f"{k}={v}", "-n", nid] for k, v in agent_overrides(plan, p).items()]
    if plan.node(node).has(Role.quorum):
        cmds += [["cm_ctl", "set", "--param", "--server", "-k", f"{k}={v}", "-n", nid]
                 for k, v in server_overrides(plan, p).items()]
    return cmds


def resource_json(plan: LabPlan, p: CmParameters) -> str | None:
    """``cm_resource.json`` with one VIP resource per VIP (instances: the DNs of
    its AZ, each with its node's address as ``base_ip``); None without VIPs."""
    if not plan.vips:
        return None
    resources = []
    for v in plan.vips:
        instances = [{"node_id": node_id(plan, d.name), "res_instance_id": dn_instance(plan, p, d.name),
                      "inst_attr": f"base_ip={d.address}"}
                     for d in database_nodes(plan, p) if d.az == v.az]
        resources.append({"name": f"VIP_{v.az}", "resources_type": "VIP", "instances": instances, "float_ip": str(v.address)})
    return json.dumps({"resources": resources}, indent=2) + "\n"


#: The probes' SQL user (the initial user may not log in remotely in openGauss).
CLIENT_USER = "cmlab"


def client_settings(plan: LabPlan) -> list[list[str]]:
    """``gs_guc set`` argv lists for what the probes need of each DN, written
    with the node's other settings before the DN first starts (:func:`dn_commands`).

    Stock libpq (psycopg) does not speak openGauss's sha256 authentication, so
    passwords are also stored as md5 (``password_encryption_type=1``) and the
    lab subnets get an md5 rule (inferred from the openGauss docs on
    password_encryption_type and gs_guc -h; confirmed on the real binaries).
    """
    out = [["gs_guc", "set", "-D", DN_DIR, "-c", "password_encryption_type=1"]]
    return out + [["gs_guc", "set", "-D", DN_DIR, "-h", f"host all {CLIENT_USER} {a.subnet} md5"] for a in plan.azs]


def client_sql(password: str) -> list[str]:
    """The SQL that makes the probes' user, run on the primary once the cluster is ready."""
    return [f"CREATE USER {CLIENT_USER} WITH SYSADMIN PASSWORD '{password}'"]
