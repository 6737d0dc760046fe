"""Per-node configuration files of a postgres-patroni lab, generated from the plan.

Facts honoured (../shared/reference/postgres-patroni.md):
* Patroni uses the etcd **v2** API (``etcd:``) and etcd runs with
  ``--enable-v2=true``, because Debian's vip-manager 1.0.2 reads only v2 (§0.1).
* vip-manager's ``trigger-key`` is ``/<namespace>/<scope>/leader`` and its
  ``trigger-value`` the Patroni ``name`` (§1, §4); it must be stopped with
  SIGINT to remove the VIP (§4).
* PostgreSQL listens on all addresses so that it answers on the VIP (§9).
* Patroni runs as ``postgres`` (§6); pg_rewind needs a rewind user and
  pg_hba access to ``postgres`` (§6, §9).
"""

from __future__ import annotations

import json

from cmlab.engines.postgres_patroni.parameters import PatroniParameters
from cmlab.topology.plan import LabPlan, NodePlan
from cmlab.topology.schema import Role

NAMESPACE = "/service/"
PG_PORT = 5432
REST_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
DATA_DIR = "/var/lib/postgresql/15/data"
BIN_DIR = "/usr/lib/postgresql/15/bin"
#: Lab credentials. A lab is a throw-away test bed on private networks.
SUPERUSER = ("postgres", "cmlab")
REPLICATION = ("replicator", "cmlab-repl")
REWIND = ("rewind_user", "cmlab-rewind")

CONF_DIR = "/etc/cmlab"
PATRONI_YML = f"{CONF_DIR}/patroni.yml"
VIP_MANAGER_YML = f"{CONF_DIR}/vip-manager.yml"
SUPERVISORD_CONF = f"{CONF_DIR}/supervisord.conf"


def etcd_hosts(plan: LabPlan) -> list[str]:
    return [f"{n.address}:{ETCD_CLIENT_PORT}" for n in plan.nodes_with(Role.quorum)]


def leader_key(plan: LabPlan) -> str:
    return f"{NAMESPACE}{plan.name}/leader"


def sync_key(plan: LabPlan) -> str:
    """Patroni's ``/sync`` key: ``{"leader": ..., "sync_standby": ...}``."""
    return f"{NAMESPACE}{plan.name}/sync"


def _yaml(data: object) -> str:
    # JSON is valid YAML, and it leaves no doubt about quoting.
    return json.dumps(data, indent=2) + "\n"


def patroni_yml(plan: LabPlan, node: NodePlan, p: PatroniParameters) -> str:
    subnets = [str(a.subnet) for a in plan.azs]
    pg_params = {
        "wal_level": "replica",
        "hot_standby": "on",
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_keep_size": "128MB",
        # A lab runs several servers on 2 cores: keep each one small.
        "shared_buffers": "32MB",
        "max_connections": 50,
        **p.postgresql,
    }
    # Patroni reads its own timeline over a local replication connection.
    hba = ["local all all trust", "host all all 127.0.0.1/32 trust", f"host replication {REPLICATION[0]} 127.0.0.1/32 trust"]
    for s in subnets:
        hba += [f"host replication {REPLICATION[0]} {s} scram-sha-256"]
    hba += ["host all all 0.0.0.0/0 scram-sha-256"]
    conf = {
        "scope": plan.name,
        "namespace": NAMESPACE,
        "name": node.name,
        "restapi": {"listen": f"0.0.0.0:{REST_PORT}", "connect_address": f"{node.address}:{REST_PORT}"},
        "etcd": {"hosts": etcd_hosts(plan)},
        "bootstrap": {
            "dcs": {
                "ttl": p.ttl,
                "loop_wait": p.loop_wait,
                "retry_timeout": p.retry_timeout,
                "maximum_lag_on_failover": p.maximum_lag_on_failover,
                "primary_start_timeout": p.primary_start_timeout,
                "primary_stop_timeout": p.primary_stop_timeout,
                "synchronous_mode": p.synchronous_mode,
                "synchronous_mode_strict": p.synchronous_mode_strict,
                "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": pg_params},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
        },
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "connect_address": f"{node.address}:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": BIN_DIR,
            "pgpass": "/tmp/pgpass0",
            "authentication": {
                "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                "replication": {"username": REPLICATION[0], "password": REPLICATION[1]},
                "rewind": {"username": REWIND[0], "password": REWIND[1]},
            },
            # cmlab.node names the server to the probes (cmlab.probes.writer).
            "parameters": {"unix_socket_directories": "/var/run/postgresql", "cmlab.node": node.name},
            "pg_hba": hba,
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    return _yaml(conf)


def etcd_command(plan: LabPlan, node: NodePlan, p: PatroniParameters) -> list[str]:
    members = ",".join(f"{n.name}=http://{n.address}:{ETCD_PEER_PORT}" for n in plan.nodes_with(Role.quorum))
    return [
        "/usr/bin/etcd",
        f"--name={node.name}",
        "--data-dir=/var/lib/etcd/data",
        f"--listen-peer-urls=http://{node.address}:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=http://{node.address}:{ETCD_PEER_PORT}",
        f"--listen-client-urls=http://{node.address}:{ETCD_CLIENT_PORT},http://127.0.0.1:{ETCD_CLIENT_PORT}",
        f"--advertise-client-urls=http://{node.address}:{ETCD_CLIENT_PORT}",
        f"--initial-cluster={members}",
        "--initial-cluster-state=new",
        f"--initial-cluster-token=cmlab-{plan.name}-{plan.digest}",
        f"--heartbeat-interval={p.etcd_heartbeat_ms}",
        f"--election-timeout={p.etcd_election_timeout_ms}",
        f"--pre-vote={'true' if p.etcd_pre_vote else 'false'}",
        "--enable-v2=true",
    ]


def vip_manager_yml(plan: LabPlan, node: NodePlan, p: PatroniParameters) -> str | None:
    """vip-manager 1.0.2's YAML (vip-manager@v1.0.2 vipconfig/config.go), or
    None when the node's AZ has no VIP. The interface is found at start by
    the node's address (``cmlab-vip-manager``), since Docker does not promise
    the order of eth0/eth1."""
    vip = plan.vip_of_az(node.az)
    if vip is None or not node.has(Role.database):
        return None
    conf = {
        "ip": str(vip.address),
        "netmask": vip.prefixlen,
        "trigger-key": leader_key(plan),
        "trigger-value": node.name,
        "manager-type": "basic",
        "dcs-type": "etcd",
        "dcs-endpoints": [f"http://{h}" for h in etcd_hosts(plan)],
        "interval": p.vip_interval_ms,
        "retry-num": 2,
        "retry-after": 250,
    }
    return _yaml(conf)


def supervisord_conf(plan: LabPlan, node: NodePlan, p: PatroniParameters) -> str:
    """supervisord (Debian's ``supervisor``) runs the node's processes and
    restarts one that dies, as systemd would on a real host."""
    out = [
        "[supervisord]",
        "nodaemon=true",
        "user=root",
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "pidfile=/run/supervisord.pid",
        "",
        "[unix_http_server]",
        "file=/run/supervisor.sock",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        "serverurl=unix:///run/supervisor.sock",
        "",
    ]

    def program(name: str, command: list[str], user: str = "root", stopsignal: str = "TERM", extra: tuple[str, ...] = ()) -> None:
        out.extend([
            f"[program:{name}]",
            "command=" + " ".join(command),
            f"user={user}",
            "autostart=true",
            "autorestart=true",
            "startsecs=0",
            "startretries=1000",
            f"stopsignal={stopsignal}",
            "stopwaitsecs=20",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
            *extra,
            "",
        ])

    if node.has(Role.quorum):
        program("etcd", etcd_command(plan, node, p))
    if node.has(Role.database):
        program("patroni", ["/usr/bin/patroni", PATRONI_YML], user="postgres",
                extra=('environment=HOME="/var/lib/postgresql",USER="postgres"',))
        if plan.vip_of_az(node.az) is not None:
            # SIGINT: the only signal on which vip-manager 1.0.2 removes the VIP.
            program("vip-manager", ["/usr/local/bin/cmlab-vip-manager", VIP_MANAGER_YML], stopsignal="INT")
    return "\n".join(out)
