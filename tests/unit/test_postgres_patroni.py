"""The postgres-patroni engine's generated configuration and its reading of Patroni."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmlab.engines.base import NodeRole
from cmlab.engines.postgres_patroni import PostgresPatroni
from cmlab.engines.postgres_patroni import config
from cmlab.engines.registry import default_registry
from cmlab.errors import EngineError
from cmlab.topology import load

ROOT = Path(__file__).resolve().parents[2]
ENGINE = PostgresPatroni()


def two_az():
    return load(ROOT / "topologies" / "two-az.yaml", default_registry())


def test_patroni_uses_etcd_v2_on_every_quorum_member_and_the_lab_timing():
    plan = two_az()
    conf = json.loads(config.patroni_yml(plan, plan.node("pg3"), ENGINE.params(plan)))
    quorum = [f"{plan.node(n).address}:2379" for n in ("pg1", "pg2", "pg4")]
    assert conf["etcd"] == {"hosts": quorum}  # `etcd:` (v2), for vip-manager 1.0.2
    assert conf["scope"] == "two-az" and conf["name"] == "pg3"
    dcs = conf["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["synchronous_mode"]) == (10, 2, 4, True)
    assert dcs["primary_stop_timeout"] == 5  # a demotion is bounded (Patroni's default 0 is not)
    assert "host replication replicator 127.0.0.1/32 trust" in conf["postgresql"]["pg_hba"]
    assert conf["postgresql"]["listen"] == "0.0.0.0:5432"
    assert conf["postgresql"]["connect_address"] == f"{plan.node('pg3').address}:5432"
    assert conf["postgresql"]["parameters"]["cmlab.node"] == "pg3"


def test_etcd_runs_only_on_quorum_nodes_with_v2_enabled():
    plan = two_az()
    for name, has_etcd in (("pg1", True), ("pg3", False), ("pg4", True), ("pg5", False)):
        conf = config.supervisord_conf(plan, plan.node(name), ENGINE.params(plan))
        assert ("[program:etcd]" in conf) is has_etcd
        assert "[program:patroni]" in conf
    cmd = config.etcd_command(plan, plan.node("pg1"), ENGINE.params(plan))
    assert "--enable-v2=true" in cmd
    assert "--pre-vote=true" in cmd  # a healed member does not depose the leader
    assert any(a.startswith("--initial-cluster=pg1=http://") and "pg4=http://" in a for a in cmd)


def test_vip_manager_watches_the_leader_key_for_its_own_name_with_the_vip_of_its_az():
    plan = two_az()
    for name in ("pg1", "pg5"):
        node = plan.node(name)
        conf = json.loads(config.vip_manager_yml(plan, node, ENGINE.params(plan)))
        assert conf["trigger-key"] == "/service/two-az/leader"
        assert conf["trigger-value"] == name
        assert conf["ip"] == str(plan.vip_of_az(node.az).address)
    sup = config.supervisord_conf(plan, plan.node("pg1"), ENGINE.params(plan))
    assert "[program:vip-manager]" in sup and "stopsignal=INT" in sup


def test_container_spec_gives_volumes_files_and_capabilities_by_role():
    plan = two_az()
    spec = ENGINE.container(plan, plan.node("pg1"))
    assert set(spec.volumes) == {"/var/lib/postgresql", "/var/lib/etcd"}
    assert {config.PATRONI_YML, config.SUPERVISORD_CONF, config.VIP_MANAGER_YML} <= set(spec.files)
    assert spec.files[config.PATRONI_YML].uid == 101  # postgres, fixed in the image recipe
    assert "NET_ADMIN" in spec.cap_add
    assert set(ENGINE.container(plan, plan.node("pg5")).volumes) == {"/var/lib/postgresql"}


def test_timing_derives_from_the_parameters():
    plan = two_az()
    t = ENGINE.timing(plan)
    assert t.failover_s == 10 + 2 + 5
    # demotion path: loop_wait + retry_timeout + primary_stop_timeout + loop_wait, then the margin
    assert t.quorum_leader_loss_s == 2 + 4 + 5 + 2 + 5
    slow_stop = load(ROOT / "topologies" / "two-az.yaml", default_registry(), parameters={"primary_stop_timeout": 20})
    assert ENGINE.timing(slow_stop).quorum_leader_loss_s == 2 + 4 + 20 + 2 + 5
    assert t.start_s > t.failover_s and t.poll_s <= 0.5


class FakeAccess:
    """Patroni's /cluster is ``cluster``; the leader's /patroni lists ``replication``
    (default: ``sync`` for the members /cluster calls sync_standby)."""

    def __init__(self, cluster, running=None, replication=None):
        self.cluster, self.running_ = cluster, running or {}
        self.replication = replication if replication is not None else [
            {"application_name": m["name"], "state": "streaming", "sync_state": "sync" if m["role"] == "sync_standby" else "async"}
            for m in cluster.get("members", []) if m["role"] != "leader"]

    def running(self, node):
        return self.running_.get(node.name, True)

    def http_json(self, node, port, path, timeout_s):
        if port == 2379:
            return {"health": "true"}
        if path == "/patroni":
            return {"role": "master", "state": "running", "replication": self.replication}
        return self.cluster

    def http_get(self, node, port, path, timeout_s):
        if path == "/health":
            return 200, b'{"health": "true"}'
        assert port == 2379 and path.endswith("/leader?quorum=true"), path
        leader = next((m["name"] for m in self.cluster.get("members", []) if m["role"] == "leader"), None)
        return (200, json.dumps({"node": {"value": leader}}).encode()) if leader else (404, b"{}")

    def exec(self, node, argv, user="root"):
        raise AssertionError("not used")


def quickstart_cluster(pg3_lag: int = 16) -> dict:
    """Patroni's /cluster for the quickstart lab: pg1 leader, pg2 named in /sync, pg3 a replica."""
    return {"members": [
        {"name": "pg1", "role": "leader", "state": "running", "timeline": 1},
        {"name": "pg2", "role": "sync_standby", "state": "streaming", "lag": 0, "timeline": 1},
        {"name": "pg3", "role": "replica", "state": "streaming", "lag": pg3_lag, "timeline": 1},
    ]}


def test_observe_maps_patroni_roles_and_reports_readiness():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    cluster = quickstart_cluster()
    state = ENGINE.observe(plan, FakeAccess(cluster))
    assert [(n.name, n.role) for n in state.nodes] == [
        ("pg1", NodeRole.primary), ("pg2", NodeRole.sync_standby), ("pg3", NodeRole.standby)]
    assert state.ready and state.node("pg3").lag_bytes == 16

    down = ENGINE.observe(plan, FakeAccess({"members": cluster["members"][1:]}, running={"pg1": False}))
    assert down.node("pg1").role is NodeRole.down
    assert not down.ready and "0 primaries" in down.not_ready


def test_a_standby_named_in_the_sync_key_is_sync_only_when_the_primary_replicates_synchronously_to_it():
    # Patroni 3.0.2's /cluster calls the /sync key's members sync_standby whoever the
    # key's leader is; a stale key after a switchover, or Patroni restarted on the
    # primary (CI, patroni/patroni#2877), left the primary asynchronous.
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    cluster = quickstart_cluster(pg3_lag=0)
    asynchronous = [{"application_name": n, "state": "streaming", "sync_state": "async"} for n in ("pg2", "pg3")]
    state = ENGINE.observe(plan, FakeAccess(cluster, replication=asynchronous))
    assert state.node("pg2").role is NodeRole.standby
    assert not state.ready
    assert state.not_ready.startswith("no sync standby: Patroni's /sync key names pg2, but the primary does not replicate")
    assert "patroni/patroni#2877" in state.not_ready


def test_no_sync_standby_is_only_not_yet_when_the_primary_does_not_answer():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())

    class Silent(FakeAccess):
        def http_json(self, node, port, path, timeout_s):
            if path == "/patroni":
                raise ConnectionRefusedError("Patroni restarting")
            return super().http_json(node, port, path, timeout_s)

    assert ENGINE.observe(plan, Silent(quickstart_cluster(pg3_lag=0))).not_ready == "no sync standby yet"


class SwitchoverAccess(FakeAccess):
    """Records the REST calls; the /sync key is deleted after ``sync_reads`` reads."""

    def __init__(self, cluster, sync_reads):
        super().__init__(cluster)
        self.calls, self.sync_reads = [], sync_reads

    def http_get(self, node, port, path, timeout_s):
        if "/sync?" in path:
            self.calls.append("read /sync")
            self.sync_reads -= 1
            return (200, b'{"node": {"value": "pg1 sync"}}') if self.sync_reads >= 0 else (404, b"{}")
        return super().http_get(node, port, path, timeout_s)

    def http_post(self, node, port, path, body, timeout_s, method="POST"):
        self.calls.append(f"{method} {path} {json.dumps(body, sort_keys=True)}")
        return 200, "ok"


def test_switchover_to_a_non_sync_standby_waits_for_the_sync_key_to_go_before_switching():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    access = SwitchoverAccess(quickstart_cluster(), sync_reads=2)
    ENGINE.switchover(plan, access, "pg3")
    assert access.calls == [
        'PATCH /config {"synchronous_mode": false}', "read /sync", "read /sync", "read /sync",
        'POST /switchover {"candidate": "pg3", "leader": "pg1"}', 'PATCH /config {"synchronous_mode": true}']


def test_switchover_gives_up_when_the_leader_keeps_its_sync_key():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry(), parameters={"loop_wait": 1, "retry_timeout": 1, "ttl": 5})
    cluster = {"members": [{"name": "pg1", "role": "leader", "state": "running"},
                           {"name": "pg2", "role": "sync_standby", "state": "streaming", "lag": 0}]}
    access = SwitchoverAccess(cluster, sync_reads=10**6)
    with pytest.raises(EngineError, match="kept its /sync key"):
        ENGINE.switchover(plan, access, "pg2")
    assert not any("/switchover" in c for c in access.calls)
    assert access.calls[-1] == 'PATCH /config {"synchronous_mode": true}'


def test_repair_on_the_leader_pauses_synchronous_mode_until_the_sync_key_is_gone_then_resumes_it():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    access = SwitchoverAccess(quickstart_cluster(), sync_reads=1)
    ENGINE.repair(plan, access, "pg1")
    assert access.calls == ['PATCH /config {"synchronous_mode": false}', "read /sync", "read /sync",
                            'PATCH /config {"synchronous_mode": true}']
    standby = SwitchoverAccess(quickstart_cluster(), sync_reads=0)
    ENGINE.repair(plan, standby, "pg3")
    assert standby.calls == ['POST /reinitialize {"force": true}']


class RestAccess:
    """Answers Patroni's /patroni with ``answers[node]`` ((status, body), or None: no answer)."""

    def __init__(self, answers, running=True):
        self.answers, self.running_ = answers, running

    def running(self, node):
        return self.running_

    def http_get(self, node, port, path, timeout_s):
        assert (port, path) == (config.REST_PORT, "/patroni")
        answer = self.answers.get(node.name)
        if answer is None:
            raise ConnectionRefusedError(f"{node.address}:{port}")
        return answer


def test_observe_node_reads_patroni_roles_and_tells_down_from_unknown():
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    primary = {"state": "running", "role": "master", "timeline": 3,
               "replication": [{"application_name": "pg2", "state": "streaming"}, {"application_name": "pg3", "state": "startup"}]}
    sync = {"state": "running", "role": "replica", "sync_standby": True, "timeline": 3}
    access = RestAccess({"pg1": (200, json.dumps(primary).encode()), "pg2": (503, json.dumps(sync).encode()),
                         "pg3": (503, b"<html>")})
    s1, s2, s3 = (ENGINE.observe_node(plan, plan.node(n), access) for n in ("pg1", "pg2", "pg3"))
    assert (s1.role, s1.healthy, s1.timeline, s1.followers) == (NodeRole.primary, True, 3, ("pg2",))
    assert s2.role is NodeRole.sync_standby  # a 503 still carries the body
    assert (s3.role, s3.detail) == (NodeRole.unknown, "HTTP 503")
    assert ENGINE.observe_node(plan, plan.node("pg1"), RestAccess({})).role is NodeRole.unknown
    assert ENGINE.observe_node(plan, plan.node("pg1"), RestAccess({}, running=False)).role is NodeRole.down
    # The probes' loop records the same state when nobody answers.
    reading = ENGINE.role_reading(plan, plan.node("pg1"))
    assert reading.unanswered().role is NodeRole.unknown


def test_a_standby_on_another_timeline_than_the_primarys_is_not_healthy():
    """It has not followed the last promotion (seen in CI: such a standby, made
    primary by a switchover, reused a timeline ID and lost 668 acknowledged writes)."""
    from cmlab.engines.base import NodeRole, NodeState
    from cmlab.engines.postgres_patroni.engine import _behind_the_primarys_timeline

    states = [NodeState("pg1", NodeRole.primary, healthy=True, timeline=2, detail="running"),
              NodeState("pg2", NodeRole.sync_standby, healthy=True, lag_bytes=0, timeline=2, detail="streaming"),
              NodeState("pg4", NodeRole.standby, healthy=True, lag_bytes=0, timeline=1, detail="running")]
    out = {s.name: s for s in _behind_the_primarys_timeline(states)}
    assert out["pg1"].healthy and out["pg2"].healthy
    assert not out["pg4"].healthy and "on timeline 1 (the primary's: 2)" in out["pg4"].detail


def test_ensure_ready_repairs_the_sick_nodes_or_else_the_primary_of_a_cluster_not_ready():
    from cmlab.api import LabStatus, NodeRow, to_repair
    from cmlab.engines.base import ClusterState, NodeState

    def status(rows, not_ready):
        states = tuple(NodeState(r.node, NodeRole(r.role), healthy=r.healthy) for r in rows)
        return LabStatus("l", "postgres-patroni", ClusterState(states, not_ready), {}, rows, not_ready)

    primary = NodeRow("pg1", "az1", "10.0.0.1", "primary", None, True, "running")
    streaming = NodeRow("pg2", "az1", "10.0.0.2", "standby", 0, True, "streaming")
    lagless = NodeRow("pg3", "az1", "10.0.0.3", "standby", None, True, "running")
    sick = NodeRow("pg3", "az1", "10.0.0.3", "standby", 0, False, "stopped")
    assert to_repair(status([primary, streaming, lagless], "not streaming yet: pg3")) == ["pg3"]
    assert to_repair(status([primary, streaming, sick], "not healthy: pg3")) == ["pg3"]
    assert to_repair(status([primary, streaming], "no sync standby: Patroni's /sync key names pg2, ...")) == ["pg1"]
    assert to_repair(status([primary, streaming], "")) == []
