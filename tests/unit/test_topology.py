"""Topology files: parsing, every rejection rule, allocation, positions in errors."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from cmlab.engines.registry import default_registry
from cmlab.errors import TopologyError
from cmlab.topology import load, loads
from cmlab.topology.plan import LabPlan

ROOT = Path(__file__).resolve().parents[2]
REG = default_registry()

GOOD = """\
name: t1
azs:
  - {name: az1, subnet: 10.99.1.0/24}
nodes:
  - {name: a, az: az1}
  - {name: b, az: az1, address: 10.99.1.12}
  - {name: c, az: az1}
vips:
  - {az: az1, address: 10.99.1.100}
"""


def plan_of(text: str, **kw) -> LabPlan:
    return loads(text, REG, source="t.yaml", **kw)


def error_of(text: str, **kw) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        plan_of(text, **kw)
    return info.value


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "topologies").glob("*.yaml")))
def test_every_example_topology_is_valid(example):
    plan = load(ROOT / "topologies" / example, REG)
    assert plan.nodes and plan.azs


def test_a_good_topology_resolves_names_addresses_and_defaults():
    plan = plan_of(GOOD)
    assert plan.engine == "postgres-patroni"
    assert [n.container for n in plan.nodes] == ["cmlab-t1-a", "cmlab-t1-b", "cmlab-t1-c"]
    assert [str(n.address) for n in plan.nodes] == ["10.99.1.11", "10.99.1.12", "10.99.1.13"]
    assert plan.azs[0].network == "cmlab-t1-az1" and str(plan.azs[0].gateway) == "10.99.1.1"
    assert plan.router is None and plan.azs[0].router_address is None
    assert plan.vips[0].name == "vip-az1" and plan.vips[0].prefixlen == 24
    assert plan.parameters["ttl"] == 10 and plan.parameters["loop_wait"] == 2


def test_the_plan_survives_its_json_label():
    plan = plan_of(GOOD)
    assert LabPlan.from_json(plan.to_json()) == plan
    assert LabPlan.from_json(plan.to_json()).digest == plan.digest


def test_omitted_subnets_are_allocated_away_from_taken_ones():
    text = GOOD.replace(", subnet: 10.99.1.0/24", "").replace(", address: 10.99.1.100", "").replace(", address: 10.99.1.12", "")
    plan = plan_of(text, taken=[IPv4Network("10.213.0.0/24"), IPv4Network("10.213.1.0/24")])
    assert plan.azs[0].subnet == IPv4Network("10.213.2.0/24")
    assert plan.vips[0].address == IPv4Address("10.213.2.100")


def test_two_azs_get_a_router_and_routes_through_it():
    plan = load(ROOT / "topologies" / "two-az.yaml", REG)
    assert plan.router == "cmlab-two-az-router"
    az1, az2 = plan.azs
    assert str(az1.router_address).endswith(".254")
    routes = plan.routes_for(plan.node("pg1"))
    assert routes == [(az2.subnet, az1.router_address)]


@pytest.mark.parametrize(
    "change, where, words",
    [
        (("  - {name: c, az: az1}", "  - {name: a, az: az1}"), "nodes[0].name", "used twice"),
        (("  - {name: c, az: az1}", "  - {name: c, az: az9}"), "nodes[2].az", "unknown AZ 'az9'"),
        (("address: 10.99.1.100", "address: 10.99.2.100"), "vips[0].address", "outside AZ 'az1'"),
        (("address: 10.99.1.100", "address: 10.99.1.12"), "vips[0].address", "is the address of nodes[1]"),
        (("  - {name: c, az: az1}", "  - {name: c, az: az1, roles: [database]}"), "nodes", "etcd needs a majority"),
        (("name: t1", "name: T1"), "name", "should match pattern"),
        (("name: t1", "name: t1\nbogus: 1"), "bogus", "unknown key"),
        (("name: t1", "name: t1\nengine: nosuch"), "engine", "unknown engine 'nosuch'"),
        (("name: t1", "name: t1\nparameters: {ttl: 6}"), "parameters.ttl", "exceeds ttl"),
        (("name: t1", "name: t1\nparameters: {tll: 30}"), "parameters.tll", "unknown parameter"),
        (("name: t1", "name: t1\nnetwork: {driver: overlay}"), "network.driver", "needs the Docker hosts"),
        (("name: t1", "name: t1\nhosts: [{name: h1, endpoint: 'ssh://root@h1'}]"), "hosts", "bridges, which live on one host"),
        (("name: t1", "name: t1\nnetwork: {mtu: 1400}"), "network.mtu", "overlay networks only"),
        (("  - {name: c, az: az1}", "  - {name: c, az: az1, host: h1}"), "nodes[2].host", "lists no hosts"),
    ],
)
def test_bad_topologies_are_rejected_with_place_and_fix(change, where, words):
    err = error_of(GOOD.replace(*change))
    assert any(i.where == where and words in i.message for i in err.issues), str(err)
    assert "t.yaml" in str(err)
    assert all(i.fix for i in err.issues if i.where == where), str(err)


def test_overlapping_subnets_are_rejected():
    text = GOOD.replace("  - {name: az1, subnet: 10.99.1.0/24}", "  - {name: az1, subnet: 10.99.1.0/24}\n  - {name: az2, subnet: 10.99.1.128/25}")
    err = error_of(text)
    assert any(i.where == "azs[1].subnet" and "overlaps" in i.message for i in err.issues)


def test_a_subnet_taken_on_the_host_is_rejected():
    err = error_of(GOOD, taken=[IPv4Network("10.99.0.0/16")])
    assert any(i.where == "azs[0].subnet" and "already used on this host" in i.message for i in err.issues)


def test_errors_carry_line_and_column():
    err = error_of(GOOD.replace("  - {name: c, az: az1}", "  - {name: c, az: az9}"))
    assert "t.yaml:7:19: nodes[2].az" in str(err)


def test_duplicate_keys_are_rejected_with_their_line():
    err = error_of("name: t1\nname: t2\n")
    assert err.issues[0].where == "name" and "twice" in err.issues[0].message
    assert "t.yaml:2:1" in str(err)


def test_aliases_are_refused_so_no_alias_blow_up():
    bomb = 'name: t1\na: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
    err = error_of(bomb)
    assert "anchors" in str(err) or "aliases" in str(err)


def test_yaml_syntax_errors_point_at_the_line():
    err = error_of("name: t1\nazs: [\n")
    assert "YAML" in str(err) and "t.yaml:" in str(err)


def test_oversized_files_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("#" * (300 * 1024))
    with pytest.raises(TopologyError, match="larger than|over"):
        load(big, REG)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        load(tmp_path / "nope.yaml", REG)


def test_synchronous_mode_needs_two_databases():
    text = GOOD.replace("  - {name: b, az: az1, address: 10.99.1.12}", "  - {name: b, az: az1, roles: [quorum]}").replace(
        "  - {name: c, az: az1}", "  - {name: c, az: az1, roles: [quorum]}")
    err = error_of(text)
    assert any(i.where == "parameters.synchronous_mode" for i in err.issues)


def test_an_address_without_its_subnet_is_rejected():
    err = error_of(GOOD.replace(", subnet: 10.99.1.0/24", ""))
    assert any(i.where == "nodes[1].address" and "needs its AZ's subnet" in i.message for i in err.issues)


def test_parameters_from_the_command_line_win_and_are_checked_as_if_written():
    from cmlab.topology.resolve import load, parse_assignments

    given = parse_assignments(["ttl=20", "synchronous_mode=false", "postgresql=", "note=a=b"])
    assert given == {"ttl": 20, "synchronous_mode": False, "postgresql": "", "note": "a=b"}
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry(), parameters={"ttl": 20, "loop_wait": 3})
    assert (plan.parameters["ttl"], plan.parameters["loop_wait"]) == (20, 3)
    with pytest.raises(TopologyError, match="parameters.bogus: unknown parameter"):
        load(ROOT / "topologies" / "quickstart.yaml", default_registry(), parameters={"bogus": 1})
    with pytest.raises(ValueError, match="write KEY=VALUE"):
        parse_assignments(["ttl"])


HOSTS = """\
name: t1
network: {driver: overlay}
hosts:
  - {name: h1, endpoint: "ssh://root@10.0.0.1"}
  - {name: h2, endpoint: "unix:///run/h2.sock", address: 10.0.0.2}
  - {name: h3, endpoint: "tcp://h3.example:2376", tls_dir: /etc/certs}
azs:
  - {name: az1, subnet: 10.99.1.0/24}
  - {name: az2, subnet: 10.99.2.0/24}
nodes:
  - {name: a, az: az1}
  - {name: b, az: az1}
  - {name: c, az: az2}
  - {name: d, az: az2}
  - {name: e, az: az2, roles: [quorum], host: h3}
vips:
  - {az: az1}
  - {az: az2}
"""


def test_a_lab_across_hosts_places_each_az_on_a_host_and_reserves_the_access_address():
    plan = plan_of(HOSTS)
    assert [(n.name, n.host) for n in plan.nodes] == [("a", "h1"), ("b", "h1"), ("c", "h2"), ("d", "h2"), ("e", "h3")]
    assert [h.address for h in plan.hosts] == ["10.0.0.1", "10.0.0.2", "h3.example"]
    assert plan.router_host == "h1" and plan.mtu == 1350 and plan.across_hosts
    az1, az2 = plan.azs
    assert (az1.host, az2.host) == ("h1", "h2")
    assert str(az1.access_address) == "10.99.1.253" and az1.clients_from == az1.access_address
    assert all(n.address != az1.access_address for n in plan.nodes)
    assert LabPlan.from_json(plan.to_json()) == plan
    assert plan_of(yaml_dump(plan.to_topology())) == plan  # a bundle's topology brings back the same plan


def yaml_dump(doc) -> str:
    import yaml

    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    "change, where, words",
    [
        (("  - {name: b, az: az1}", "  - {name: b, az: az1, host: h2}"), "vips[0].az", "gratuitous ARP does not cross hosts"),
        (("  - {name: b, az: az1}", "  - {name: b, az: az1, host: h9}"), "nodes[1].host", "unknown host 'h9'"),
        (('endpoint: "ssh://root@10.0.0.1"', 'endpoint: "ftp://x"'), "hosts[0].endpoint", "neither a Docker endpoint"),
        ((', address: 10.0.0.2', ''), "hosts[1].address", "has no address"),
        (('endpoint: "ssh://root@10.0.0.1"', 'endpoint: "ssh://root@10.0.0.1", tls_dir: /x'), "hosts[0].tls_dir", "tcp:// endpoints only"),
        (("  - {name: h3,", "  - {name: h1,"), "hosts[2].name", "used twice"),
        (("vips:", "disks:\n  - {name: vote, nodes: [a, c]}\nvips:"), "disks[0].nodes", "a loop device exists on one host only"),
    ],
)
def test_bad_labs_across_hosts_are_rejected_with_place_and_fix(change, where, words):
    err = error_of(HOSTS.replace(*change))
    assert any(i.where == where and words in i.message for i in err.issues), str(err)
    assert all(i.fix for i in err.issues if i.where == where), str(err)


def test_a_missing_key_is_reported_at_its_mapping():
    err = error_of(HOSTS.replace(', address: 10.0.0.2', ''))
    assert "t.yaml:5:5: hosts[1].address" in str(err), str(err)


def test_a_quorum_only_node_may_sit_on_another_host_than_its_azs_vip():
    plan = plan_of(HOSTS)
    assert plan.node("e").host == "h3" and plan.az("az2").host == "h2"


@pytest.mark.parametrize("value", ["5", "true", "10.5"])
def test_an_address_written_as_a_number_is_refused_in_plain_words(value):
    text = ("name: t\nengine: postgres-patroni\nazs: [{name: az1, subnet: 10.9.0.0/24}]\nnodes:\n"
            f"  - {{name: pg1, az: az1, address: {value}}}\n  - {{name: pg2, az: az1}}\n  - {{name: pg3, az: az1}}\n")
    with pytest.raises(TopologyError) as err:
        loads(text, default_registry())
    message = str(err.value)
    assert "nodes[0].address: write it as text" in message and "Value error" not in message
