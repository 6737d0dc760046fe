"""Pure parts of the nemesis: grudges (partition shapes), targets, fault records."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cmlab.engines.base import ClusterState, NodeRole, NodeState
from cmlab.engines.registry import default_registry
from cmlab.errors import FaultError
from cmlab.faults import grudge, targets
from cmlab.faults.base import Fault
from cmlab.faults.network import Loss, Partition
from cmlab.topology import load

ROOT = Path(__file__).resolve().parents[2]
NODES = ["n1", "n2", "n3", "n4", "n5"]


def sees(g: grudge.Grudge, a: str, b: str) -> bool:
    """Whether packets from a reach b."""
    return a not in g.get(b, frozenset())


def test_isolate_cuts_the_target_both_ways_and_leaves_the_rest_whole():
    g = grudge.isolate(["n1"], NODES)
    for other in NODES[1:]:
        assert not sees(g, "n1", other) and not sees(g, other, "n1")
    assert all(sees(g, a, b) for a in NODES[1:] for b in NODES[1:])


def test_a_one_way_cut_drops_one_direction_only():
    g = grudge.cut(["n1"], ["n2"], one_way=True)
    assert not sees(g, "n1", "n2") and sees(g, "n2", "n1")
    with pytest.raises(ValueError):
        grudge.cut(["n1"], ["n1", "n2"])


def test_halves_make_a_minority_and_a_majority():
    g = grudge.halves(NODES, random.Random(3))
    sides = {frozenset(n for n in NODES if sees(g, n, a)) for a in NODES}
    assert sorted(len(s) for s in sides) == [2, 3]


def test_a_bridge_node_sees_both_halves_that_do_not_see_each_other():
    g = grudge.bridge(NODES, random.Random(1))
    bridge = [n for n in NODES if all(sees(g, n, m) and sees(g, m, n) for m in NODES)]
    assert len(bridge) == 1
    others = [n for n in NODES if n != bridge[0]]
    assert any(not sees(g, a, b) for a in others for b in others)


def test_in_a_majorities_ring_every_node_sees_a_majority_and_no_two_the_same():
    g = grudge.majorities_ring(NODES, random.Random(5))
    views = {n: frozenset(m for m in NODES if sees(g, m, n)) for n in NODES}
    assert all(len(v) >= 3 for v in views.values())
    assert len(set(views.values())) == len(NODES)


def plan():
    return load(ROOT / "topologies" / "two-az.yaml", default_registry())


def state(primary: str = "pg2") -> ClusterState:
    roles = {"pg1": NodeRole.standby, "pg2": NodeRole.primary, "pg3": NodeRole.sync_standby,
             "pg4": NodeRole.standby, "pg5": NodeRole.standby}
    roles[primary], roles["pg2"] = roles["pg2"], roles[primary]
    return ClusterState(tuple(NodeState(n, r, True) for n, r in roles.items()))


@pytest.mark.parametrize("spec, expected", [
    ("pg1", ["pg1"]),
    ("pg1,pg4", ["pg1", "pg4"]),
    ("az:az2", ["pg4", "pg5"]),
    ("quorum", ["pg1", "pg2", "pg4"]),
    ("databases", ["pg1", "pg2", "pg3", "pg4", "pg5"]),
    ("primary", ["pg2"]),
    ("sync-standby", ["pg3"]),
    ("standbys", ["pg1", "pg3", "pg4", "pg5"]),
    ("primary,az:az2", ["pg2", "pg4", "pg5"]),
])
def test_targets_resolve_to_nodes_in_topology_order(spec, expected):
    assert targets.resolve(spec, plan(), state()) == expected


def test_shapes_pick_random_minorities_and_majorities_reproducibly():
    p = plan()
    one = targets.resolve("minority", p, None, random.Random(9))
    assert len(one) == 2 and one == targets.resolve("minority", p, None, random.Random(9))
    assert len(targets.resolve("majority", p, None, random.Random(9))) == 3
    assert len(targets.resolve("one", p, None, random.Random(9))) == 1


def test_unknown_targets_name_the_words_that_work():
    with pytest.raises(FaultError, match="unknown target 'leader'.*primary"):
        targets.resolve("leader", plan(), state())
    with pytest.raises(FaultError, match="unknown AZ 'az3'"):
        targets.resolve("az:az3", plan(), state())
    with pytest.raises(FaultError, match="no quorum leader"):
        targets.resolve("quorum-leader", plan(), state(), quorum_leader=lambda: None)


def test_a_fault_survives_its_record_and_keeps_its_key():
    f = Partition((("pg1", ("pg2", "pg3")), ("pg2", ("pg1",))), clients=("pg1",))
    again = Fault.from_record(f.to_record())
    assert again == f and again.key == f.key
    assert Loss(("pg1",), 10.0).key != Loss(("pg1",), 20.0).key


def test_nonsense_fault_parameters_are_refused():
    with pytest.raises(FaultError):
        Loss(("pg1",), 0)
    with pytest.raises(FaultError):
        Loss(("pg1",), 10, direction="sideways")


def test_bandwidth_takes_a_direction_and_refuses_others():
    from cmlab.faults.network import Bandwidth

    assert Bandwidth(("pg1",), "1mbit", direction="ingress").describe() == "bandwidth 1mbit ingress on pg1"
    assert Bandwidth(("pg1",), "1mbit").key != Bandwidth(("pg1",), "1mbit", direction="both").key
    with pytest.raises(FaultError, match="use egress, ingress or both"):
        Bandwidth(("pg1",), "1mbit", direction="sideways")


def test_gateway_loss_drops_the_routers_own_addresses_both_ways_and_needs_a_router():
    from cmlab.faults.network import GatewayLoss
    from types import SimpleNamespace

    plan = load(ROOT / "topologies" / "two-az.yaml", default_registry())
    routers = sorted(str(a.router_address) for a in plan.azs)
    chains = GatewayLoss(("pg1", "pg4")).chains_by_node(SimpleNamespace(plan=plan))
    assert set(chains) == {"pg1", "pg4"}
    (_, hook_in, rules_in), (_, hook_out, rules_out) = chains["pg1"]
    assert (hook_in, hook_out) == ("input", "output")
    assert all(r in rules_in[0] for r in routers) and rules_in[0].startswith("ip saddr")
    assert all(r in rules_out[0] for r in routers) and rules_out[0].startswith("ip daddr")
    one_az = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    with pytest.raises(FaultError, match="no router"):
        GatewayLoss(("pg1",)).chains_by_node(SimpleNamespace(plan=one_az))


def test_isolating_with_the_clients_cuts_them_from_the_target_only(tmp_path, monkeypatch):
    """Not from every node of the grudge (each other node drops the target):
    the probes must still see the rest of the cluster elect a new primary."""
    from types import SimpleNamespace

    from cmlab.faults.base import FaultContext
    from cmlab.faults.nemesis import Nemesis

    monkeypatch.setenv("CMLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CMLAB_RESULTS_DIR", str(tmp_path))
    p = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    fault = Nemesis(p, None, default_registry().get("postgres-patroni"), 1).isolate("pg1", clients=True)  # type: ignore[arg-type]
    chains = fault.chains_by_node(FaultContext(p, SimpleNamespace(), None))  # type: ignore[arg-type]
    gateway = str(p.az("az1").gateway)

    def dropped(node: str) -> set[str]:
        rule = chains[node][0][2][0]  # "ip saddr { a, b } drop"
        return {a.strip() for a in rule[rule.index("{") + 1:rule.index("}")].split(",")}

    assert gateway in dropped("pg1")
    assert gateway not in dropped("pg2") | dropped("pg3")


def test_cascade_upstream_is_the_node_each_cascade_standby_streams_from():
    cascade = ClusterState(tuple(NodeState(n, r, True) for n, r in {
        "pg1": NodeRole.primary, "pg2": NodeRole.standby, "pg3": NodeRole.standby,
        "pg4": NodeRole.cascade_standby, "pg5": NodeRole.standby}.items()))
    asked: list[str] = []
    assert targets.resolve("cascade-upstream", plan(), cascade,
                           upstream=lambda n: asked.append(n) or "pg3") == ["pg3"] and asked == ["pg4"]
    with pytest.raises(FaultError, match="cannot be seen"):
        targets.resolve("cascade-upstream", plan(), cascade, upstream=lambda n: None)
    with pytest.raises(FaultError, match="no node is a cascade standby now"):
        targets.resolve("cascade-upstream", plan(), state(), upstream=lambda n: "pg1")


def test_the_upstream_is_read_from_the_walreceiver_channel():
    from cmlab.engines.opengauss_cm.engine import upstream_of_channel

    og = load(ROOT / "topologies" / "opengauss-cascade.yaml", default_registry())
    og2 = str(og.node("og2").address)
    out = f"{og.node('og4').address}:40512<--{og2}:5433\n"
    assert upstream_of_channel(og, out) == "og2"
    assert upstream_of_channel(og, "") is None


def test_the_former_words_still_designate_the_quorum_with_a_warning(caplog):
    from cmlab import vocabulary

    vocabulary._warned.clear()
    with caplog.at_level("WARNING", logger="cmlab"):
        assert targets.resolve("arbiters", plan()) == targets.resolve("quorum", plan())
    assert "'arbiters' is a former word: cmlab now says 'quorum'" in caplog.text
    from cmlab.engines.base import NodeRole
    assert NodeRole("arbiter") is NodeRole.quorum  # histories written before the word changed


def test_a_process_is_named_by_its_duty_the_former_word_too():
    from types import SimpleNamespace

    from cmlab.engines.postgres_patroni import PostgresPatroni
    from cmlab.faults.process import process_name

    ctx = SimpleNamespace(engine=PostgresPatroni())
    assert process_name(ctx, "quorum") == process_name(ctx, "arbiter") == "etcd"
    assert process_name(ctx, "patroni") == "patroni"
    with pytest.raises(FaultError, match="no process 'nosuch'"):
        process_name(ctx, "nosuch")
