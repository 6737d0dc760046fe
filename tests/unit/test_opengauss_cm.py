"""Engine opengauss-cm: golden files of the generated configuration for every
example topology, the topology rules, and the reading of `cm_ctl query`.

Set CMLAB_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change
(and read the diff before committing it).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cmlab.engines.opengauss_cm import OpenGaussCm, config
from cmlab.engines.opengauss_cm.parameters import CmParameters
from cmlab.engines.opengauss_cm.package import inspect, sha256_of
from cmlab.engines.opengauss_cm.query import parse
from cmlab.engines.opengauss_cm.show import parse_show
from cmlab.engines.registry import default_registry
from cmlab.errors import EngineError, ImageBuildError, TopologyError
from cmlab.topology import load, loads

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "opengauss-cm"
EXAMPLES = sorted(p.name for p in (ROOT / "topologies").glob("opengauss-*.yaml"))
REG = default_registry()


def rendered(example: str) -> dict[str, str]:
    plan = load(ROOT / "topologies" / example, REG)
    p = CmParameters.model_validate(plan.parameters)
    out = {"cluster.xml": config.cluster_xml(plan, p), "cm_resource.json": config.resource_json(plan, p) or "(none)\n"}
    for n in plan.nodes:
        spec = OpenGaussCm().container(plan, n)
        out[f"cm-set-{n.name}.sh"] = spec.files["/etc/cmlab/cm-set.sh"].content
        if "/etc/cmlab/dn-set.sh" in spec.files:
            out[f"dn-set-{n.name}.sh"] = spec.files["/etc/cmlab/dn-set.sh"].content
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_generated_configuration_matches_the_golden_files(example):
    folder = GOLDEN / example.removesuffix(".yaml")
    files = rendered(example)
    if os.environ.get("CMLAB_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    for name, text in files.items():
        assert (folder / name).read_text() == text, f"{folder / name} differs (CMLAB_UPDATE_GOLDEN=1 rewrites it)"


def test_vip_resources_use_the_key_the_runtime_reads():
    text = rendered("opengauss-3az.yaml")["cm_resource.json"]
    assert '"resources_type": "VIP"' in text and '"resource_type"' not in text


def test_two_node_mode_points_cm_at_the_router():
    plan = load(ROOT / "topologies" / "opengauss-two-node.yaml", REG)
    p = CmParameters.model_validate(plan.parameters)
    server = config.server_overrides(plan, p)
    assert server["cms_enable_failover_on2nodes"] == "true"
    assert server["third_party_gateway_ip"] == str(plan.azs[0].router_address)
    assert server["cms_network_isolation_timeout"] == 20
    # The survivor must acknowledge writes alone (seen: without it, none until its peer was back).
    assert ["gs_guc", "set", "-D", config.DN_DIR, "-c", "most_available_sync=on"] in config.dn_commands(plan, p, "og1")
    one = load(ROOT / "topologies" / "opengauss-1az.yaml", REG)
    assert not any("most_available_sync" in " ".join(c) for c in config.dn_commands(one, CmParameters.model_validate(one.parameters), "og1"))


def test_two_node_failover_waits_for_the_lone_cms_to_work_as_a_minority():
    """The survivor's CMS counts cms_network_isolation_timeout 1 s rounds before DCC
    lets it act alone (cms_monitor_main.cpp); seen: promoted at 40.8 s."""
    two = load(ROOT / "topologies" / "opengauss-two-node.yaml", REG)
    one = load(ROOT / "topologies" / "opengauss-1az.yaml", REG)
    assert OpenGaussCm().timing(two).failover_s == OpenGaussCm().timing(one).failover_s + 20
    slower = load(ROOT / "topologies" / "opengauss-two-node.yaml", REG, parameters={"cms_network_isolation_timeout": 30})
    assert OpenGaussCm().timing(slower).failover_s == OpenGaussCm().timing(one).failover_s + 30


def test_share_disk_mode_gives_the_voting_disk_to_agent_and_server_and_keeps_dcc():
    plan = load(ROOT / "topologies" / "opengauss-share-disk.yaml", REG)
    p = CmParameters.model_validate(plan.parameters)
    server = config.server_overrides(plan, p)
    assert (server["dn_arbitrate_mode"], server["voting_disk_path"]) == ("share_disk", "/dev/cmlab-voting")
    assert "ddb_type" not in server and "share_disk_path" not in server
    assert config.agent_overrides(plan, p)["voting_disk_path"] == "/dev/cmlab-voting"


def test_the_share_disk_store_is_refused_on_loop_devices():
    text = (ROOT / "topologies" / "opengauss-share-disk.yaml").read_text()
    text = text.replace("  - {name: voting, size_mb: 1024, kind: block}\n",
                        "  - {name: voting, size_mb: 1024, kind: block}\n  - {name: share, size_mb: 1024, kind: block}\n")
    with pytest.raises(TopologyError) as err:
        loads(text + "  share_disk: share\n", REG)
    assert "parameters.share_disk" in str(err.value) and "COMPARE AND WRITE" in str(err.value)


BASE = """\
name: t
engine: opengauss-cm
azs: [{name: az1, subnet: 10.99.0.0/24}]
"""


def nodes(n: int, extra: str = "") -> str:
    return BASE + "nodes:\n" + "".join(f"  - {{name: n{i}, az: az1{extra}}}\n" for i in range(1, n + 1))


@pytest.mark.parametrize("text, where, words", [
    (nodes(10), "nodes", "at most 8 standbys"),
    (nodes(2), "nodes", "CM needs a majority of at least 3"),
    (nodes(3) + "  - {name: n4, az: az1, roles: [database]}\n", "nodes[3].roles", "requires a cm_server on every node"),
    (nodes(3) + "parameters: {cascade_standbys: [n3]}", "parameters.cascade_standbys", "one primary and two standbys"),
    (nodes(3) + "parameters: {dn_arbitrate_mode: share_disk}", "parameters.dn_arbitrate_mode", "needs a voting disk"),
    (nodes(3) + "parameters: {two_node: true}", "parameters.two_node", "exactly 2 database nodes"),
    (nodes(3) + "parameters: {voting_disk: v}", "parameters.voting_disk", "no disk 'v'"),
    (nodes(3) + "disks: [{name: v, kind: filesystem}]\nparameters: {voting_disk: v}", "parameters.voting_disk", "raw devices"),
    (nodes(3) + "parameters: {primary: n9}", "parameters.primary", "not a database node"),
    (BASE.replace("azs: [", "azs: [{name: az2, subnet: 10.99.1.0/24}, ") + "nodes:\n" +
     "".join(f"  - {{name: n{i}, az: az1}}\n" for i in range(1, 4)) + "  - {name: n4, az: az2, roles: [database]}\n"
     "parameters: {cascade_standbys: [n4]}", "parameters.cascade_standbys[0]", "has no standby in its AZ 'az2'"),
    (nodes(3) + "parameters: {installed_gausshome: /og/app, installed_gphome: /og/tools}", "parameters.installed_gausshome",
     "none is given"),
    (nodes(3) + "parameters: {base_image: me/og, installed_gausshome: /og/app}", "parameters.installed_gausshome",
     "both its GAUSSHOME and the OM tools' GPHOME"),
    (nodes(3) + "parameters: {base_image: me/og, installed_gausshome: og/app, installed_gphome: /og/tools}",
     "parameters.installed_gausshome", "not an absolute path"),
    (nodes(3) + "parameters: {base_image: me/og, installed_gausshome: /og/app, installed_gphome: /og/tools, package: /x.tar.gz}",
     "parameters.package", "both a package and an installed openGauss"),
])
def test_topologies_cm_cannot_run_are_refused_before_anything_starts(text, where, words):
    with pytest.raises(TopologyError) as info:
        loads(text, REG, source="cm.yaml")
    assert any(i.where == where and words in i.message for i in info.value.issues), str(info.value)


SAMPLE = (Path(__file__).parent / "data" / "cm-query-samples" / "om-detail-cm-etcd-switchover.txt").read_text()


def test_the_documented_sample_is_read():
    q = parse(SAMPLE)
    assert q.connected and q.cluster_state == "Normal" and not q.pausing
    assert [(c.node, c.state) for c in q.cms] == [("host40", "Primary"), ("host39", "Standby"), ("host15", "Standby")]
    assert [(d.node, d.instance, d.static_role, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("host40", 6001, "P", "Primary", "Normal"), ("host39", 6002, "S", "Standby", "Normal"), ("host15", 6003, "S", "Standby", "Normal")]
    assert q.cms_primary().node == "host40" and [d.node for d in q.primaries()] == ["host40"]


# Degraded fields, multi-word states and bad rows: tests/unit/test_cm_query.py.


def test_paused_and_unreachable_forms():
    paused = SAMPLE.replace("current_az      : AZ_ALL", "current_az      : AZ_ALL\npausing         : Yes")
    assert parse(paused).pausing
    down = "cm_ctl: can't connect to cm_server.\nMaybe cm_server is not running, or timeout expired. Please try again.\n"
    assert parse(down).connected is False


# Built to the print format of CM/src/cm_ctl/ctl_show.cpp and src/cm_common/cm_rhb.cpp
# (no documented sample): node 3's links are cut, its disk heartbeat is stale.
SHOW = """
[  Network Connect State  ]

Network timeout:       6s
Current CMServer time: 2026-11-21 09:30:00
Network stat('Y' means connected, otherwise 'N'):
|  \\  |  Y  |  N  |
|  Y  |  \\  |  N  |
|  N  |  N  |  \\  |

[  Node Disk HB State  ]

Node disk hb timeout:    200s
Current CMServer time: 2026-11-21 09:30:00
Node disk hb stat('Y' means connected, otherwise 'N'):
|  Y  |  Y  |  N  |

[  FloatIp Network State  ]

node        instance         base_ip      float_ip_name float_ip
------------------------------------------------------------------
1  og1      6001     10.213.20.11 VIP_az1       10.213.20.100
"""


def test_cm_ctl_show_is_read():
    show = parse_show(SHOW)
    assert (show.network_timeout_s, show.disk_timeout_s) == (6, 200)
    assert show.network[0] == [None, True, False]
    assert show.cut_links() == [(1, 3), (2, 3), (3, 1), (3, 2)]
    assert show.disk_hb == [True, True, False]
    assert show.vip_holders() == {"10.213.20.100": ["og1"]}
    assert show.float_ips[0].instance == 6001 and show.float_ips[0].name == "VIP_az1"


def test_cm_ctl_show_other_forms():
    with_head = SHOW.replace("|  \\  |  Y  |  N  |", "| D\\S |  1  |  2  |  3  |\n|  1  |  \\  |  Y  |  N  |")
    assert parse_show(with_head).network[0] == [None, True, False]
    assert parse_show("cm_ctl: can't connect to cm_server.\n").connected is False
    no_vip = SHOW.split("[  FloatIp")[0]
    assert parse_show(no_vip).float_ips == []
    with pytest.raises(ValueError, match="not Y, N"):
        parse_show(SHOW.replace("|  Y  |  Y  |  N  |", "|  Y  |  ?  |  N  |"))
    with pytest.raises(ValueError, match="float IP row"):
        parse_show(SHOW.replace("VIP_az1       10.213.20.100", "VIP_az1"))


# ---- the user's packages: checked before anything is built --------------------------------



def tarball(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_all_package_is_recognised_and_its_checksum_verified(tmp_path):
    pkg = tarball(tmp_path / "openGauss-All-6.0.2-openEuler20.03-x86_64.tar.gz", {
        "openGauss-Server-6.0.2-openEuler20.03-x86_64.tar.bz2": b"s", "openGauss-CM-6.0.2-openEuler20.03-x86_64.tar.gz": b"c",
        "openGauss-OM-6.0.2-openEuler20.03-x86_64.tar.gz": b"o"})
    found = inspect(pkg, sha256=sha256_of(pkg))
    assert found.kind == "all" and set(found.members) == {"server", "cm", "om"} and found.digest == sha256_of(pkg)
    with pytest.raises(ImageBuildError, match="SHA-256 is .* expected 00"):
        inspect(pkg, sha256="00" * 32)


def test_a_server_package_needs_its_cm_package(tmp_path):
    server = tarball(tmp_path / "openGauss-Server-6.0.2-x86_64.tar.bz2", {"bin/gaussdb": b"x"}, "w:bz2")
    with pytest.raises(ImageBuildError, match="without CM"):
        inspect(server)
    cm = tarball(tmp_path / "openGauss-CM-6.0.2-x86_64.tar.gz", {"bin/cm_ctl": b"x"})
    with pytest.raises(ImageBuildError, match="holds no OM: also give the OM package"):
        inspect(server, cm)
    om = tarball(tmp_path / "openGauss-OM-6.0.2-x86_64.tar.gz", {"script/gs_om": b"x"})
    found = inspect(server, cm, om_package=om)
    assert found.kind == "separate" and found.om == om


def test_an_all_package_without_om_and_an_om_that_is_not_one_are_refused(tmp_path):
    pkg = tarball(tmp_path / "openGauss-All-6.0.0.tar.gz", {"openGauss-Server-6.0.0.tar.bz2": b"s", "openGauss-CM-6.0.0.tar.gz": b"c"})
    with pytest.raises(ImageBuildError, match="holds no openGauss-OM"):
        inspect(pkg)
    junk = tarball(tmp_path / "tools.tar.gz", {"README": b"x"})
    with pytest.raises(ImageBuildError, match="not an OM package .no script/gs_om inside"):
        inspect(pkg, om_package=junk)
    (tmp_path / "om").mkdir()
    with pytest.raises(ImageBuildError, match="an OM directory needs script/gs_om"):
        inspect(pkg, om_package=tmp_path / "om")


def test_an_install_tree_needs_the_cm_binaries(tmp_path):
    (tmp_path / "bin").mkdir()
    for b in ("gaussdb", "gs_ctl", "cm_ctl"):
        (tmp_path / "bin" / b).write_text("")
    with pytest.raises(ImageBuildError, match="bin/cm_agent, bin/cm_server, bin/om_monitor"):
        inspect(tmp_path)
    for b in ("cm_agent", "cm_server", "om_monitor"):
        (tmp_path / "bin" / b).write_text("")
    with pytest.raises(ImageBuildError, match="an install tree.* holds no OM"):
        inspect(tmp_path)
    om = tmp_path / "om" / "script"
    om.mkdir(parents=True)
    (om / "gs_om").write_text("")
    found = inspect(tmp_path, om_package=om.parent)
    assert found.kind == "tree" and found.om == om.parent


def test_a_wrong_layout_or_no_package_says_what_was_expected(tmp_path):
    junk = tarball(tmp_path / "junk.tar.gz", {"README": b"x"})
    with pytest.raises(ImageBuildError, match="not an openGauss package.*found: README"):
        inspect(junk)
    with pytest.raises(ImageBuildError, match="no such file"):
        inspect(tmp_path / "nope.tar.gz")
    with pytest.raises(ImageBuildError, match="CMLAB_OPENGAUSS_PACKAGE"):
        inspect(None)


def test_a_bad_package_in_the_topology_is_refused_before_anything_starts(tmp_path):
    junk = tarball(tmp_path / "junk.tar.gz", {"README": b"x"})
    with pytest.raises(TopologyError, match="parameters.package: .*not an openGauss package"):
        loads(nodes(3) + f"parameters: {{package: {junk}}}", REG, source="cm.yaml")


def test_the_probes_get_a_user_and_md5_rules_for_every_az():
    plan = load(ROOT / "topologies" / "opengauss-3az.yaml", REG)
    flat = [" ".join(c) for c in config.dn_commands(plan, CmParameters.model_validate(plan.parameters), "og1")]
    assert any("password_encryption_type=1" in c for c in flat)
    assert sum(" md5" in c for c in flat) == 3  # in the DN's first settings, before it starts
    assert config.client_sql("pw") == ["CREATE USER cmlab WITH SYSADMIN PASSWORD 'pw'"]


def test_event_triggers_are_compact_json_of_absolute_paths():
    import json

    value = config.event_triggers()
    assert " " not in value and len(value) <= 1024
    assert all(path.startswith("/") and path.endswith(".sh") for path in json.loads(value).values())
    scripts = ROOT / "images" / "opengauss-cm" / "events"
    assert {f"{config.EVENTS_DIR}/{p.name}" for p in scripts.glob("*.sh")} == set(json.loads(value).values())


# ---- real output of cm_ctl and gs_om (tests/unit/data/opengauss-cm-real/README.md) ----------

REAL = Path(__file__).parent / "data" / "opengauss-cm-real"


@pytest.mark.parametrize("name", ["query-Cvidp-normal.txt", "query-Cvidpz-ALL-normal.txt", "query-Cvid-normal.txt",
                                  "gs_om-status-detail-normal.txt"])
def test_real_normal_outputs_read_as_the_cluster_was(name):
    from cmlab.engines.opengauss_cm.query import parse

    q = parse((REAL / name).read_text())
    assert q.cluster_state == "Normal"
    assert [(c.node, c.state) for c in q.cms] == [("og1", "Primary"), ("og2", "Standby"), ("og3", "Standby")]
    assert [(d.node, d.instance, d.static_role, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", 6001, "P", "Primary", "Normal"), ("og2", 6002, "S", "Standby", "Normal"), ("og3", 6003, "S", "Standby", "Normal")]
    assert all(d.datadir == "/var/lib/opengauss/data/dn1" and d.ip.startswith("10.213.20.") for d in q.datanodes)
    assert [d.port for d in q.datanodes] == ([None] * 3 if name == "query-Cvid-normal.txt" else [5432] * 3)
    assert [d.az for d in q.datanodes] == (["az1"] * 3 if "-z" in name or "z-ALL" in name else [None] * 3)


@pytest.mark.parametrize("name", ["query-Cvidp-dn-stopped.txt", "query-Cvidpz-ALL-dn-stopped.txt"])
def test_real_degraded_outputs_read_as_the_cluster_was(name):
    from cmlab.engines.opengauss_cm.query import parse

    q = parse((REAL / name).read_text())
    assert q.cluster_state == "Degraded" and q.cms_primary().node == "og3"
    assert [(d.node, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", "Standby", "Normal"), ("og2", "Primary", "Normal"), ("og3", "Down", "Manually stopped")]


def test_real_pending_need_repair_after_a_restart():
    from cmlab.engines.opengauss_cm.query import parse

    q = parse((REAL / "query-Cvidp-after-restart.txt").read_text())
    assert [(d.node, d.dynamic_role, d.state) for d in q.datanodes][2] == ("og3", "Pending", "Need repair")


def test_real_cm_ctl_show():
    show = parse_show((REAL / "show-normal.txt").read_text())
    assert show.connected and show.network_timeout_s == 6 and show.disk_timeout_s == 200
    assert not show.cut_links()
    assert show.vip_holders() == {"10.213.20.100": ["og1"]}


@pytest.mark.parametrize("name", ["query-Cvidp-paused.txt", "query-Cvidpz-ALL-paused.txt", "gs_om-status-detail-paused.txt"])
def test_real_paused_outputs_say_pausing(name):
    """Captured with CM's pause file on every node (what `cm_ctl pause` touches through pssh)."""
    q = parse((REAL / name).read_text())
    assert q.pausing and q.cluster_state == "Normal" and q.cms_primary().node == "og1"
    assert [(d.node, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", "Primary", "Normal"), ("og2", "Standby", "Normal"), ("og3", "Standby", "Normal")]


def test_real_cm_ctl_show_while_paused():
    show = parse_show((REAL / "show-paused.txt").read_text())
    assert show.connected and not show.cut_links() and show.vip_holders() == {"10.213.20.100": ["og1"]}


def test_values_go_bare_and_what_cm_ctl_refuses_is_written_into_the_file():
    # CM's daemons keep quotes in string values (get_config_param), and cm_ctl refuses a value
    # starting with '/' (ctl_param_check.cpp: CheckParameterValueType); seen on the real binaries.
    assert config.cm_ctl_accepts("off") and config.cm_ctl_accepts("10.213.41.254") and config.cm_ctl_accepts('{"a":"/x"}')
    assert not config.cm_ctl_accepts("/dev/cmlab-voting") and not config.cm_ctl_accepts("a#b") and not config.cm_ctl_accepts("")
    assert config.written_directly("agent", "voting_disk_path", "/dev/cmlab-voting")  # a path
    assert config.written_directly("server", "ddb_type", "2") and config.written_directly("server", "cluster_starting_aribt_delay", "180")
    assert not config.written_directly("server", "cms_enable_failover_on2nodes", "true")
    plan = load(ROOT / "topologies" / "opengauss-share-disk.yaml", default_registry())
    p = CmParameters.model_validate(plan.parameters)
    assert all("'" not in argv[5] for argv in config.set_commands(plan, p, "og1"))


class RecordingAccess:
    """Runs nothing: records each exec and answers with ``reply``."""

    def __init__(self, reply: tuple[int, str] = (0, "switchover successfully.")) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.reply = reply

    def running(self, node) -> bool:
        return True

    def exec(self, node, argv, user="root"):
        self.calls.append((node.name, argv))
        return self.reply


def test_a_switchover_is_cm_ctl_switchover_of_the_candidates_dn_on_its_node():
    plan = load(ROOT / "topologies" / "opengauss-3az.yaml", default_registry())
    engine = OpenGaussCm()
    access = RecordingAccess()
    engine.switchover(plan, access, "og5")
    node, argv = access.calls[0]
    timeout = str(int(engine.timing(plan).failover_s))
    assert node == "og5" and f"cm_ctl switchover -n 5 -D {config.DN_DIR} -t {timeout}" in argv[-1]
    refused = RecordingAccess((255, 'cm_ctl: can not do switchover at current role'))
    with pytest.raises(EngineError, match="can not do switchover at current role"):
        engine.switchover(plan, refused, "og2")
    assert len(refused.calls) == 1  # never retried on another node


def test_a_frozen_primary_bound_follows_cm_s_t_state_check_interval():
    """cm_agent checks a stopped (T state) DN 36 s apart whatever agent_phony_dead_check_interval
    says (cma_phony_dead_check.cpp); enable_e2e_rto makes it check every second and stop it."""
    from cmlab.engines.opengauss_cm.engine import frozen_primary_bound

    assert frozen_primary_bound(CmParameters(), 25.0) == 10 + 4 * 36 + 25
    assert frozen_primary_bound(CmParameters(phony_dead_effective_time=2, agent_phony_dead_check_interval=40), 25.0) == 40 + 40 + 25
    assert frozen_primary_bound(CmParameters(enable_e2e_rto=True), 25.0) == 26
    plan = load(ROOT / "topologies" / "opengauss-1az.yaml", REG)
    assert OpenGaussCm().timing(plan).frozen_primary_s == frozen_primary_bound(CmParameters(), OpenGaussCm().timing(plan).failover_s)


def test_real_voting_disk_lost_stops_every_dn():
    q = parse((REAL / "query-Cvidp-voting-disk-lost.txt").read_text())
    assert q.cluster_state == "Unavailable" and q.cms_primary().node == "og1"
    assert [(d.node, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", "Down", "Unknown"), ("og2", "Down", "Unknown"), ("og3", "Down", "Unknown")]
