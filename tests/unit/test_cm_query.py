"""``cm_ctl query`` / ``gs_om -t status`` parsing on published and captured outputs.

Samples: ``data/cm-query-samples/`` (README names each source) and
``data/opengauss-cm-real/`` (our lab's captures). Expectations are written from
reading each sample, not from the parser's output.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmlab.engines.opengauss_cm.query import CmQueryParseError, parse

SAMPLES = Path(__file__).parent / "data" / "cm-query-samples"
REAL = Path(__file__).parent / "data" / "opengauss-cm-real"


def read(name: str, az=None):
    return parse((SAMPLES / name).read_text(encoding="utf-8"), az=az)


def dns(q):
    """(node, instance, port, static, dynamic, state, detail) per DN."""
    return [(d.node, d.instance, d.port, d.static_role, d.dynamic_role, d.state, d.detail) for d in q.datanodes]


def cms(q):
    return [(c.node, c.state) for c in q.cms]


def resources(q):
    return [(r.node, r.name, r.instance, r.state) for r in q.resources]


# ---- cm_ctl query, CM's own layout -------------------------------------------------------------

def test_cvipd_with_resources_masked_ips_and_one_dn_a_line():
    q = read("Cvipd-resources-cms-minority.txt")
    assert q.connected and q.cluster_state == "Degraded"
    assert cms(q) == [("openGauss151", "Primary"), ("openGauss153", "Down"), ("openGauss155", "Down")]
    assert [c.ip for c in q.cms] == ["NodeIp_1", "NodeIp_2", "NodeIp_3"]
    assert resources(q) == [("openGauss151", "dms_res", 6001, "OnLine"), ("openGauss153", "dms_res", 6002, "Deleted"),
                            ("openGauss155", "dms_res", 6003, "Deleted"), ("openGauss151", "dss", 20001, "OnLine"),
                            ("openGauss153", "dss", 20002, "Deleted"), ("openGauss155", "dss", 20003, "Deleted")]
    assert dns(q) == [("openGauss151", 6001, 22290, "P", "Primary", "Normal", ""),
                      ("openGauss153", 6002, 22290, "S", "Down", "Unknown", ""),
                      ("openGauss155", 6003, 22290, "S", "Down", "Unknown", "")]
    assert {d.datadir for d in q.datanodes} == {"/data/ss_development_install_1/install/data/dn"}
    assert [d.shard for d in q.datanodes] == [0, 1, 2]


@pytest.mark.parametrize("name", ["Cvipd-not-connected-after-cms.txt", "Cvipd-not-connected-trailing-spaces.txt"])
def test_rows_printed_before_cant_connect_are_kept(name):
    q = read(name)
    assert q.connected is False and "can't connect to cm_server" in q.error
    assert "Maybe cm_server is not running" in q.error
    assert [c.state for c in q.cms] == ["Standby", "Down", "Down"]
    assert q.datanodes == [] and q.cluster == {}


def test_a_dn_section_alone():
    q = read("Cvipd-dn-only-voting-disk.txt")
    assert q.cms == [] and q.cluster == {}
    assert dns(q) == [("openGauss111", 6001, 20128, "P", "Down", "Unknown", ""),
                      ("openGauss135", 6002, 20128, "S", "Standby", "Starting", ""),
                      ("openGauss137", 6003, 20128, "S", "Standby", "Starting", "")]


def test_om_monitor_lost_primary_moved():
    q = read("Cvipd-om-monitor-down.txt")
    assert q.cms_primary().node == "openGauss137"
    assert [d.node for d in q.primaries()] == ["openGauss137"]
    assert resources(q)[0] == ("openGauss111", "dms_res", 6001, "Deleted")


def test_promoting_with_masked_ip_and_elided_datadir():
    q = read("Cvipd-redo-promoting.txt")
    assert [d.ip for d in q.datanodes] == ["xxx.xxx.xxx.xxx"] * 3
    assert [d.datadir for d in q.datanodes] == ["/.../install/data/dn"] * 3
    assert [(d.dynamic_role, d.state) for d in q.datanodes] == [("Standby", "Starting"), ("Down", "Unknown"),
                                                                  ("Standby", "Promoting")]
    assert q.primaries() == []


def test_c_rows_of_three_and_a_pasted_prompt():
    before = read("Cvipd-switchover-lock-starting.txt")
    assert dns(before) == [("openGauss111", 6001, 12703, "P", "Down", "Starting", ""),
                           ("openGauss135", 6002, 12703, "S", "Standby", "Starting", ""),
                           ("openGauss137", 6003, 12703, "S", "Standby", "Starting", "")]
    assert [d.shard for d in before.datanodes] == [0, 0, 0]
    after = read("Cvipd-switchover-lock-prompt.txt")
    assert after.preamble == ["[xxxxxxxx@openGauss135 ~]$ cm_ctl query -Cvipd"]
    assert [(d.node, d.dynamic_role) for d in after.datanodes] == [
        ("openGauss111", "Standby"), ("openGauss135", "Primary"), ("openGauss137", "Standby")]


def test_unavailable_with_manually_stopped_beside_promoting():
    q = read("Cvipd-shm-unavailable.txt")
    assert q.cluster_state == "Unavailable" and q.cms_primary().node == "openGauss171"
    assert dns(q) == [("openGauss169", 6001, 3500, "P", "Down", "Manually stopped", ""),
                      ("openGauss171", 6002, 3500, "S", "Standby", "Promoting", "")]


def test_cv_has_no_ip_port_or_datadir():
    q = read("Cv-reform-no-ip.txt")
    assert [(c.node, c.instance, c.ip, c.datadir, c.state) for c in q.cms] == [
        ("xxxxxxxxx111", 1, None, None, "Standby"), ("xxxxxxxxx135", 2, None, None, "Standby"),
        ("xxxxxxxxx137", 3, None, None, "Primary")]
    assert [(r.node, r.ip, r.name, r.instance) for r in q.resources][3] == ("xxxxxxxxx111", None, "dss", 20001)
    assert dns(q) == [("xxxxxxxxx111", 6001, None, "P", "Primary", "Normal", ""),
                      ("xxxxxxxxx135", 6002, None, "S", "Standby", "Normal", ""),
                      ("xxxxxxxxx137", 6003, None, "S", "Standby", "Normal", "")]
    assert all(d.ip is None and d.datadir is None for d in q.datanodes)


def test_collapsed_whitespace_and_no_rules():
    q = read("Cvipd-collapsed-whitespace.txt")
    assert q.cluster_state == "Degraded"
    assert [(c.node, c.ip, c.state) for c in q.cms] == [("openGaussnode1", "172.168.90.node1", "Standby"),
                                                         ("openGaussnode2", "172.168.90.node2", "Primary")]
    assert dns(q) == [("openGaussnode1", 6001, 3500, "P", "Down", "Manually stopped", ""),
                      ("openGaussnode2", 6002, 3500, "S", "Primary", "Normal", "")]


def test_cvipdw_after_its_command_line():
    q = read("Cvipdw-resource-clean.txt")
    assert q.preamble == ["cm_ctl query -Cvipdw"]
    assert cms(q) == [("openGauss111", "Standby"), ("openGauss135", "Primary"), ("openGauss137", "Standby")]
    assert [d.state for d in q.datanodes] == ["Manually stopped", "Normal", "Normal"]


def test_main_standby_is_one_role():
    q = read("Cvidp-main-standby-dorado.txt")
    assert dns(q) == [("node1", 6001, 25400, "P", "Main Standby", "Normal", ""),
                      ("node2", 6002, 25400, "S", "Standby", "Normal", "")]
    assert q.primaries() == []


def test_az_column_nine_dns_etcd_and_unread_sections():
    q = read("om-detail-az-cn-gtm-building.txt")
    assert [(c.az, c.node_id, c.node, c.ip, c.state) for c in q.cms] == [
        ("AZ3", 1, "10.6.67.252", "10.6.67.252", "Primary"), ("AZ3", 2, "10.6.67.184", "10.6.67.184", "Standby"),
        ("AZ3", 3, "10.6.67.185", "10.6.67.185", "Standby")]
    assert [(e.node, e.instance, e.datadir, e.state) for e in q.etcd] == [
        ("10.6.67.252", 7001, "/opt/cluster/usr/local/etcd", "StateFollower"),
        ("10.6.67.184", 7002, "/opt/cluster/usr/local/etcd", "StateFollower"),
        ("10.6.67.185", 7003, "/opt/cluster/usr/local/etcd", "StateLeader")]
    assert list(q.other_sections) == ["Coordinator State", "Central Coordinator State", "GTM State"]
    assert len(q.other_sections["GTM State"]) == 4  # kept raw: the header and 3 rows (rules dropped)
    assert [(d.instance, d.static_role, d.dynamic_role, d.state, d.detail, d.shard) for d in q.datanodes] == [
        (6001, "P", "Primary", "Normal", "", 0), (6002, "S", "Standby", "Building", "0%", 0),
        (6003, "S", "Standby", "Normal", "", 0), (6004, "P", "Standby", "Building", "0%", 1),
        (6005, "S", "Primary", "Normal", "", 1), (6006, "S", "Standby", "Normal", "", 1),
        (6007, "P", "Primary", "Normal", "", 2), (6008, "S", "Standby", "Normal", "", 2),
        (6009, "S", "Standby", "Normal", "", 2)]
    assert {d.az for d in q.datanodes} == {"AZ3"} and {d.port for d in q.datanodes} == {None}
    assert [d.node for d in q.primaries()] == ["10.6.67.252", "10.6.67.252", "10.6.67.185"]


# ---- gs_om -t status: CM's form, OM's own form, the key : value form ---------------------------

def test_gs_om_detail_with_cm_and_etcd():
    q = read("om-detail-cm-etcd-switchover.txt")
    assert q.preamble == ["gs_om -t status --detail"]
    assert cms(q) == [("host40", "Primary"), ("host39", "Standby"), ("host15", "Standby")]
    assert [(e.node, e.ip, e.instance, e.state) for e in q.etcd] == [
        ("host40", "10.243.40.20", 7001, "StateFollower"), ("host39", "10.243.39.8", 7002, "StateFollower"),
        ("host15", "10.243.15.65", 7003, "StateLeader")]
    assert dns(q) == [("host40", 6001, None, "P", "Primary", "Normal", ""), ("host39", 6002, None, "S", "Standby", "Normal", ""),
                      ("host15", 6003, None, "S", "Standby", "Normal", "")]


@pytest.mark.parametrize("name, datadir", [("om-detail-no-cm-switchover.txt", "/home/wuqw/cluster/dn1/"),
                                           ("om-detail-no-cm-querying-status.txt", "/opt/gaussdb/cluster/data/dn1")])
def test_om_port_column_comes_before_the_instance(name, datadir):
    q = read(name)
    assert q.cluster_state == "Normal" and q.cms == []
    assert dns(q) == [("pekpopgsci00235", 6001, 5432, "P", "Primary", "Normal", ""),
                      ("pekpopgsci00238", 6002, 5432, "S", "Standby", "Normal", "")]
    assert [d.ip for d in q.datanodes] == ["10.244.62.204", "10.244.61.81"]
    assert {d.datadir for d in q.datanodes} == {datadir}


def test_om_form_after_a_tools_progress_lines():
    q = read("om-detail-no-cm-mergecluster.txt")
    assert q.preamble[-1] == "Merge cluster finished. Cluster status info:" and len(q.preamble) == 16
    assert dns(q) == [("openGauss54", 6001, 9000, "P", "Primary", "Normal", ""),
                      ("openGauss213", 6002, 9000, "S", "Standby", "Normal", ""),
                      ("openGauss215", 6003, 9000, "S", "Standby", "Normal", "")]


def test_dbnode_state_of_older_releases():
    q = read("om-dbnode-state.txt")
    assert dns(q) == [("plat1", 5001, None, "P", "Primary", "Normal", "")]
    assert q.datanodes[0].datadir == "/srv/gaussdb/data1/dbnode"


def test_a_host_named_like_a_word():
    q = read("om-detail-host-named-backup.txt")
    assert dns(q) == [("enmo", 6001, None, "P", "Primary", "Normal", ""), ("backup", 6002, None, "S", "Standby", "Normal", "")]


def test_key_value_form_of_a_host():
    q = read("om-status-host-key-value.txt")
    assert q.preamble == ["[omm@enmo ~]$ gs_om -t status -h backup"]
    assert q.cluster_state == "Normal"
    assert [(d.node_id, d.node, d.ip, d.instance, d.datadir, d.static_role, d.dynamic_role, d.state) for d in q.datanodes] == [
        (2, "backup", "192.168.6.8", 6002, "/opt/enmo/openGauss/101/data/dn", None, "Standby", "Normal")]


def test_key_value_form_of_our_lab():
    q = parse((REAL / "gs_om-status-all-normal.txt").read_text())
    assert cms(q) == [("og1", "Primary"), ("og2", "Standby"), ("og3", "Standby")]
    assert [(d.node, d.instance, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", 6001, "Primary", "Normal"), ("og2", 6002, "Standby", "Normal"), ("og3", 6003, "Standby", "Normal")]
    assert [d.datadir for d in q.datanodes] == ["/var/lib/opengauss/data/dn1"] * 3  # the Fenced UDF blocks are not DNs


# ---- forms with no published sample: CM's print format (ctl_query.cpp), names changed ----------

OUR_ROW = ("1  {a} 10.213.20.11    6001 5432   /var/lib/opengauss/data/dn1 P Primary Normal | "
           "2  {b} 10.213.20.12    6002 5432   /var/lib/opengauss/data/dn1 S {role_b} | "
           "3  {c} 10.213.20.13    6003 5432   /var/lib/opengauss/data/dn1 {static_c} {role_c}")
HEADER = ("[  Datanode State   ]\n\nnode   node_ip         instance                                state            | node   "
          "node_ip         instance                                state            | node   node_ip         instance   "
          "                             state\n" + "-" * 60 + "\n")


def dn_text(a="og1", b="og2", c="og3", role_b="Standby Normal", static_c="C", role_c="Cascade Standby Normal"):
    return HEADER + OUR_ROW.format(a=a, b=b, c=c, role_b=role_b, static_c=static_c, role_c=role_c) + "\n"


def test_host_names_that_are_role_words():
    q = parse(dn_text(a="primary", b="standby1", c="Down"))
    assert [(d.node, d.dynamic_role) for d in q.datanodes] == [("primary", "Primary"), ("standby1", "Standby"),
                                                               ("Down", "Cascade Standby")]


@pytest.mark.parametrize("role, expected", [
    ("Cascade Standby Normal", ("Cascade Standby", "Normal", "")),
    # Older OM's one-word role (openGauss-OM impl/upgrade/UpgradeImpl.py checks "Cascade Need repair").
    ("Cascade Need repair(Disconnected)", ("Cascade", "Need repair", "Disconnected")),
    ("Standby Need repair(WAL)", ("Standby", "Need repair", "WAL")),
    ("Standby Building(45%)", ("Standby", "Building", "45%")),
    # The state of a DR cluster's first standby, as docs two-city-three-dc-dr.md describes it.
    ("Main Standby Need repair(Connecting)", ("Main Standby", "Need repair", "Connecting")),
    ("Down    Manually stopped", ("Down", "Manually stopped", "")),
    ("Down", ("Down", "Unknown", "")),
])
def test_multi_word_and_parenthesised_states(role, expected):
    d = parse(dn_text(role_c=role)).datanodes[2]
    assert (d.dynamic_role, d.state, d.detail) == expected
    assert d.cascade == expected[0].startswith("Cascade")


def test_a_trailing_separator_is_not_part_of_the_state():
    q = parse(dn_text().rstrip("\n") + " |\n")
    assert q.datanodes[2].state == "Normal" and len(q.datanodes) == 3
    glued = parse(dn_text().rstrip("\n") + "|\n")
    assert glued.datanodes[2].state == "Normal"


@pytest.mark.parametrize("n", range(1, 10))
def test_one_to_nine_dns(n):
    rows = "\n".join(f"{i}  host{i} 10.0.0.{i}    {6000 + i} 5432   /d/dn1 {'P' if i == 1 else 'S'} "
                     f"{'Primary' if i == 1 else 'Standby'} Normal" for i in range(1, n + 1))
    q = parse("[  Datanode State   ]\n\nnode      node_ip         instance           state\n---\n" + rows + "\n")
    assert [d.instance for d in q.datanodes] == [6000 + i for i in range(1, n + 1)]
    assert [d.node for d in q.primaries()] == ["host1"]


def test_an_az_named_by_digits_needs_to_be_said():
    text = "[  CMServer State   ]\n\nnode   node_ip  instance state\n---\n7 1  og1 10.0.0.1 1    /cm Primary\n"
    with pytest.raises(CmQueryParseError):
        parse(text)  # read as node 7 named "1" at IP "og1": then "10.0.0.1" is no instance id
    q = parse(text, az=True)
    assert [(c.az, c.node_id, c.node) for c in q.cms] == [("7", 1, "og1")]


# ---- never silently wrong -------------------------------------------------------------------------

@pytest.mark.parametrize("row, line_no, expected", [
    ("x  og1 10.0.0.1    6001 5432   /d P Primary Normal", 5, "the node id"),
    ("1  og1 10.0.0.1    sixty /d P Primary Normal", 5, "the instance id"),
    ("1  og1 10.0.0.1    6001 5432   /d P Leader Normal", 5, "dynamic role"),
    ("1  og1 10.0.0.1    6001 5432   d P Primary Normal", 5, "dynamic role"),
    ("1  og1", 5, "the node IP"),
])
def test_a_row_that_does_not_fit_names_its_line(row, line_no, expected):
    text = "[  Datanode State   ]\n\nnode   node_ip   instance   state\n------\n" + row + "\n"
    with pytest.raises(CmQueryParseError, match=expected) as err:
        parse(text)
    assert err.value.line_no == line_no and err.value.line == row


def test_a_row_without_static_role_reads_with_none():
    # OM prints "%3s" of "" for an instance type it has no letter for (DbClusterInfo.py __getDnRole).
    d = parse("[  Datanode State   ]\n\nnode   node_ip   instance   state\n---\n1  og1 10.0.0.1 6001 /d Primary Normal\n").datanodes[0]
    assert (d.static_role, d.dynamic_role, d.state) == (None, "Primary", "Normal")


def test_a_header_word_cm_never_prints_is_an_error():
    with pytest.raises(CmQueryParseError, match="header words") as err:
        parse("[  Datanode State   ]\n\nnode   node_ip   instance   role   state\n---\n1 a 1.1.1.1 6001 P Primary Normal\n")
    assert err.value.line_no == 3


def test_cluster_state_lines_need_a_colon():
    with pytest.raises(CmQueryParseError, match="key : value") as err:
        parse("[   Cluster State   ]\n\ncluster_state   : Normal\nredistributing No\n")
    assert err.value.line_no == 4


def test_text_with_no_section_is_an_error():
    with pytest.raises(CmQueryParseError, match="a section"):
        parse("bash: cm_ctl: command not found\n")


def test_a_missing_field_is_none_not_a_guess():
    q = read("Cv-reform-no-ip.txt")
    assert {(d.ip, d.port, d.datadir, d.az) for d in q.datanodes} == {(None, None, None, None)}


# ---- our lab's captures ----------------------------------------------------------------------------

def _real_nodes(name: str) -> int:
    return 7 if "3az" in name else 2 if ("two-node" in name or "cms-down" in name) else 4 if "cascade" in name else 3


@pytest.mark.parametrize("name", sorted(p.name for p in REAL.glob("*.txt") if p.name.startswith(("query-", "gs_om-status-detail-normal"))))
def test_every_real_capture_parses(name):
    q = parse((REAL / name).read_text())
    assert len(q.cms) == _real_nodes(name)
    assert len(q.datanodes) == (0 if "cms-down" in name else len(q.cms))


def test_real_two_node_lab_reads_its_primary_and_standby():
    q = parse((REAL / "query-Cvidp-two-node.txt").read_text())
    assert q.connected and q.cluster_state == "Normal" and q.cms_primary().node == "og1"
    assert [(d.node, d.ip, d.static_role, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", "10.213.41.11", "P", "Primary", "Normal"), ("og2", "10.213.42.11", "S", "Standby", "Normal")]


def test_real_cascade_lab_reads_the_cascade_standby_and_its_upstream_down():
    q = parse((REAL / "query-Cvidp-cascade.txt").read_text())
    assert [(d.node, d.static_role, d.dynamic_role, d.state) for d in q.datanodes] == [
        ("og1", "P", "Primary", "Normal"), ("og2", "S", "Standby", "Normal"), ("og3", "S", "Standby", "Normal"),
        ("og4", "C", "Cascade Standby", "Normal")]
    # og2 (og4's upstream) killed: og4 stays Normal, having reconnected to og3 (gs_ctl query's channel).
    down = parse((REAL / "query-Cvidp-cascade-upstream-down.txt").read_text())
    assert down.cluster_state == "Degraded"
    assert [(d.node, d.dynamic_role, d.state) for d in down.datanodes][1:] == [
        ("og2", "Down", "Unknown"), ("og3", "Standby", "Normal"), ("og4", "Cascade Standby", "Normal")]


def test_real_two_node_lab_after_its_primary_was_killed():
    # og2's container killed: with cms_enable_failover_on2nodes the lone CMS took over and
    # promoted og1 (11 s, seen on the real binaries).
    q = parse((REAL / "query-Cvidp-two-node-peer-killed.txt").read_text())
    assert q.cluster_state == "Degraded" and q.cms_primary().node == "og1"
    assert [(d.node, d.dynamic_role, d.state) for d in q.datanodes] == [("og1", "Primary", "Normal"), ("og2", "Down", "Unknown")]


def test_real_query_with_every_cms_down_keeps_the_cms_rows_and_the_error():
    # Both cm_servers SIGSTOPped in the two-node lab: cm_ctl prints the CMS section, then gives up.
    q = parse((REAL / "query-Cvidp-cms-down.txt").read_text())
    assert not q.connected and "can't connect to cm_server" in q.error
    assert [(c.node, c.state) for c in q.cms] == [("og1", "Down"), ("og2", "Down")]
    assert q.cms_primary() is None and q.datanodes == [] and q.cluster_state == "Unknown"


def test_real_3az_lab_while_cm_builds_the_standbys():
    q = parse((REAL / "query-Cvidpz-ALL-3az-building.txt").read_text())
    assert q.cluster_state == "Unavailable" and q.cms_primary().node == "og6" and len(q.cms) == 7
    assert [(d.az, d.node, d.static_role, d.dynamic_role, d.state, d.detail) for d in q.datanodes] == [
        ("az1", "og1", "P", "Standby", "Need repair", "System id not matched"),
        ("az1", "og2", "S", "Standby", "Need repair", "System id not matched"),
        ("az1", "og3", "S", "Primary", "Normal", ""),
        ("az2", "og4", "S", "Standby", "Building", "0%"),
        ("az2", "og5", "S", "Standby", "Need repair", "System id not matched"),
        ("az3", "og6", "S", "Standby", "Building", "92%"),
        ("az3", "og7", "S", "Standby", "Need repair", "System id not matched")]
    assert {d.shard for d in q.datanodes} == {0}  # one shard: the 7 replicas on one -C row


def test_importable_alone_and_runnable_as_a_module(tmp_path):
    code = ("import sys, cmlab.engines.opengauss_cm.query as q; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('docker', 'pydantic', 'pyroute2')] "
            "+ [m for m in sys.modules if m.startswith('cmlab.') and m not in "
            "('cmlab.engines', 'cmlab.engines.opengauss_cm', 'cmlab.engines.opengauss_cm.query')]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    res = subprocess.run([sys.executable, "-m", "cmlab.engines.opengauss_cm.query", str(SAMPLES / "Cv-reform-no-ip.txt")],
                         capture_output=True, text=True, check=True)
    assert [d["instance"] for d in json.loads(res.stdout)["datanodes"]] == [6001, 6002, 6003]
    bad = tmp_path / "bad.txt"
    bad.write_text("[  Datanode State   ]\n\nnode instance state\n1 og1 x P Primary Normal\n")
    res = subprocess.run([sys.executable, "-m", "cmlab.engines.opengauss_cm.query", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "line 4" in res.stderr
