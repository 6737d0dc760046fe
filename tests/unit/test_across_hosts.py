"""Labs across hosts without Docker: the access forwards, published ports,
the helper's commands, the swarm check, image copies, the primary-seeking
writer and the remote kernel probe, each against stand-ins."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from psycopg.conninfo import conninfo_to_dict

from cmlab.engines.registry import default_registry
from cmlab.errors import LabError
from cmlab.runtime.capabilities import remote_probe
from cmlab.probes.probeset import seeking_dsns
from cmlab.probes.writer import Writer, _State
from cmlab.runtime.docker import ACCESS_PORT_BASE, DockerNodeAccess, DockerRuntime, access_forwards
from cmlab.runtime.helper import HelperRunner
from cmlab.runtime.hosts import ensure_swarm, ship_images
from cmlab.topology import loads
from tests.unit.test_topology import HOSTS

REG = default_registry()
PORTS = REG.get("postgres-patroni").client_ports(None)  # type: ignore[arg-type]


def plan():
    return loads(HOSTS, REG, source="t.yaml")


def test_access_forwards_cover_every_node_and_the_vip_of_the_az_on_distinct_ports():
    p = plan()
    fwd = access_forwards(p, "az1", PORTS)
    targets = {(a, port) for _, a, port in fwd}
    az1 = [str(n.address) for n in p.nodes if n.az == "az1"] + [str(p.vip_of_az("az1").address)]
    assert targets == {(a, port) for a in az1 for port in PORTS}
    assert [c for c, _, _ in fwd] == list(range(ACCESS_PORT_BASE, ACCESS_PORT_BASE + len(fwd)))
    assert PORTS == (5432, 8008, 2379)


class FakeContainer:
    def __init__(self, env=None, ports=None, exit_code=0, output=(b"", b"")):
        self.attrs = {"Config": {"Env": env or []}, "NetworkSettings": {"Ports": ports or {}}}
        self.calls: list[list[str]] = []
        self._result = SimpleNamespace(exit_code=exit_code, output=output)

    def exec_run(self, argv, demux=False):
        self.calls.append(argv)
        return self._result


class FakeHosts:
    """HostClients with one fake engine per host: name -> {container name: container}."""

    def __init__(self, p, containers):
        self.plan = p
        self._containers = containers

    def get(self, host):
        containers = self._containers.get(host, {})

        def get_container(name):
            from docker.errors import NotFound
            if name not in containers:
                raise NotFound(name)
            return containers[name]
        return SimpleNamespace(containers=SimpleNamespace(get=get_container))


def test_published_ports_are_read_from_the_access_containers_and_map_lab_addresses_to_host_ports():
    p = plan()
    containers = {}
    for az in p.azs:
        fwd = access_forwards(p, az.name, PORTS)
        env = ["PATH=/bin", "CMLAB_FORWARDS=" + ";".join(f"{c} {a} {port}" for c, a, port in fwd)]
        ports = {f"{c}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(40000 + c - ACCESS_PORT_BASE)}] for c, _, _ in fwd}
        containers.setdefault(az.host, {})[az.access_container] = FakeContainer(env, ports)
    runtime = DockerRuntime(client=None, hosts=FakeHosts(p, containers))  # type: ignore[arg-type]
    access = DockerNodeAccess(runtime, p)
    b = p.node("b")
    assert access.endpoint(b.address, 8008) == ("10.0.0.1", 40000 + 1 * len(PORTS) + 1)
    c = p.node("c")
    assert access.endpoint(c.address, 5432) == ("10.0.0.2", 40000)  # az2's access runs on h2
    with pytest.raises(LabError, match="not published"):
        access.endpoint(c.address, 9999)
    dsns = seeking_dsns(REG.get("postgres-patroni"), p, access)
    assert len(dsns) == 4  # a, b, c, d: the database nodes
    first = conninfo_to_dict(dsns[0])
    assert (first["host"], first["port"], first["target_session_attrs"]) == ("10.0.0.1", "40000", "read-write")


def test_a_lab_on_one_host_is_reached_at_its_own_addresses():
    p = loads("name: t1\nazs: [{name: az1}]\nnodes: [{name: a, az: az1}, {name: b, az: az1}, {name: c, az: az1}]\n", REG)
    access = DockerNodeAccess(DockerRuntime(client=None), p)  # type: ignore[arg-type]
    assert access.endpoint("10.1.2.3", 5432) == ("10.1.2.3", 5432)


def test_the_helper_runs_commands_in_its_container_and_feeds_stdin_as_an_argument():
    helper = FakeContainer(exit_code=3, output=(b"out", b"err"))
    runner = HelperRunner(SimpleNamespace(containers=SimpleNamespace(get=lambda name: helper)), "lab", "h2")
    proc = runner(["nsenter", "--net=/proc/42/ns/net", "nft", "-f", "-"], stdin="add table inet cmlab\n'quoted'")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out", "err")
    argv = helper.calls[0]
    assert argv[:4] == ["timeout", "10", "sh", "-c"]
    # The script pipes the text, quoted for sh, into the command: run it here to see.
    piped = argv[4].replace("nsenter --net=/proc/42/ns/net nft -f -", "cat")
    assert subprocess.run(["sh", "-c", piped], capture_output=True, text=True).stdout == "add table inet cmlab\n'quoted'"
    assert runner.name == "cmlab-lab-helper-h2"


class FakeSwarmClient:
    def __init__(self, state="inactive", node_id="", manager=False):
        self.state, self.node_id, self.manager = state, node_id, manager
        self.calls: list[tuple] = []
        self.swarm = SimpleNamespace(init=self._init, join=self._join, attrs={"JoinTokens": {"Worker": "TOKEN"}})
        self.nodes = SimpleNamespace(list=lambda: [SimpleNamespace(id="n1"), SimpleNamespace(id="n2"),
                                                   SimpleNamespace(id="n3")])

    def info(self):
        return {"Swarm": {"LocalNodeState": self.state, "NodeID": self.node_id, "ControlAvailable": self.manager}}

    def _init(self, **kw):
        self.calls.append(("init", kw))
        self.state, self.node_id, self.manager = "active", "n1", True

    def _join(self, **kw):
        self.calls.append(("join", kw))
        self.state, self.node_id = "active", "n2" if not self.calls[:-1] else "n3"


class SwarmHosts:
    def __init__(self, p, clients):
        self.plan, self.clients = p, clients

    @property
    def names(self):
        return [h.name for h in self.plan.hosts]

    def get(self, name):
        return self.clients[name]


def test_init_swarm_makes_the_first_host_a_manager_and_joins_the_others_at_its_address():
    p = plan()
    clients = {"h1": FakeSwarmClient(), "h2": FakeSwarmClient(), "h3": FakeSwarmClient()}
    ensure_swarm(SwarmHosts(p, clients), init=True)  # type: ignore[arg-type]
    assert clients["h1"].calls == [("init", {"advertise_addr": "10.0.0.1", "listen_addr": "0.0.0.0:2377"})]
    kind, kw = clients["h2"].calls[0]
    assert kind == "join" and kw["remote_addrs"] == ["10.0.0.1:2377"] and kw["join_token"] == "TOKEN"
    assert kw["advertise_addr"] == "10.0.0.2"


def test_without_init_a_host_outside_the_swarm_is_an_error_that_says_how_to_fix_it():
    p = plan()
    clients = {"h1": FakeSwarmClient("active", "n1", True), "h2": FakeSwarmClient("active", "n2"),
               "h3": FakeSwarmClient()}
    with pytest.raises(LabError, match=r"host h3 .* is in no swarm.*--init-swarm"):
        ensure_swarm(SwarmHosts(p, clients))  # type: ignore[arg-type]
    clients["h3"] = FakeSwarmClient("active", "elsewhere")
    with pytest.raises(LabError, match="is in another swarm"):
        ensure_swarm(SwarmHosts(p, clients))  # type: ignore[arg-type]
    clients["h1"] = FakeSwarmClient()
    with pytest.raises(LabError, match="h1 .* is not a swarm manager"):
        ensure_swarm(SwarmHosts(p, clients))  # type: ignore[arg-type]


def test_images_are_copied_only_where_the_host_lacks_them_or_holds_another():
    from docker.errors import ImageNotFound

    def engine(images):
        loaded = []

        def get(tag):
            if tag not in images:
                raise ImageNotFound(tag)
            return SimpleNamespace(id=images[tag], save=lambda named: iter([b"tar of " + tag.encode()]))
        return SimpleNamespace(images=SimpleNamespace(get=get, load=lambda data: loaded.append(b"".join(data)))), loaded

    local, _ = engine({"img:1": "sha:a"})
    h1, l1 = engine({"img:1": "sha:a"})
    h2, l2 = engine({"img:1": "sha:old"})
    h3, l3 = engine({})
    clients = SimpleNamespace(local=local, get=lambda h: {"h1": h1, "h2": h2, "h3": h3}[h])
    assert sorted(ship_images(clients, ["h1", "h2", "h3"], ["img:1"])) == ["h2 img:1", "h3 img:1"]  # type: ignore[arg-type]
    assert (l1, l2, l3) == ([], [b"tar of img:1"], [b"tar of img:1"])


def test_the_seeking_writer_moves_to_the_next_node_when_a_login_fails_and_stays_after_a_write_fails():
    w = Writer(["host=10.0.0.1 port=5432", "host=10.0.0.2 port=5432", "host=10.0.0.3 port=5432"], "seek:primary")
    assert w._at == 0
    w._state = _State.connecting
    w._fail(0.0, "connection timed out", unknown=False)
    assert w._at == 1
    w._state = _State.closed  # connect_start itself failed
    w._fail(0.0, "connection failed", unknown=False)
    assert w._at == 2
    w._state = _State.writing  # an established connection lost: the same node first
    w._fail(0.0, "no answer", unknown=True)
    assert w._at == 2
    w._state = _State.connecting
    w._fail(0.0, "session is read-only", unknown=False)
    assert w._at == 0


def test_the_remote_probe_reads_each_kernel_feature_from_the_helpers_output():
    def runner(argv):
        assert argv[:2] == ["sh", "-c"] and "unshare --net" in argv[2]
        return subprocess.CompletedProcess(argv, 0, "nft ok nftables with numgen works\ntbf ok kernel qdisc present\n"
                                           "netem no the kernel has no netem qdisc: Error: Specified qdisc kind is unknown.\n", "")
    probed = remote_probe(runner)
    assert probed["nft"] == (True, "nftables with numgen works") and probed["tbf"][0] is True
    assert probed["netem"][0] is False and "Specified qdisc kind is unknown" in probed["netem"][1]
    broken = remote_probe(lambda argv: subprocess.CompletedProcess(argv, 126, "", "exec failed"))
    assert all(not ok and "exec failed" in why for ok, why in broken.values())


def test_isolate_host_cuts_the_hosts_nodes_from_every_other_hosts_nodes_and_from_the_clients(tmp_path, monkeypatch):
    from cmlab.faults.nemesis import Nemesis

    monkeypatch.setenv("CMLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CMLAB_RESULTS_DIR", str(tmp_path))
    p = plan()
    nemesis = Nemesis(p, None, REG.get("postgres-patroni"), 1)  # type: ignore[arg-type]
    fault = nemesis.isolate_host("h1")
    grudge = dict(fault.grudge)
    assert grudge["a"] == grudge["b"] == ("c", "d", "e") and grudge["e"] == ("a", "b")
    assert fault.clients == ("a", "b")  # the clients are cut from h1's nodes only
    assert nemesis.isolate_host("h2", clients=False).clients == ()
    with pytest.raises(Exception, match="unknown host 'h9'"):
        nemesis.isolate_host("h9")
    one = loads("name: t2\nazs: [{name: az1}]\nnodes: [{name: a, az: az1}, {name: b, az: az1}, {name: c, az: az1}]\n", REG)
    with pytest.raises(Exception, match="needs a lab across hosts"):
        Nemesis(one, None, REG.get("postgres-patroni"), 1).isolate_host("h1")  # type: ignore[arg-type]


class RecordingRunner:
    """A remote host's helper: answers ``ip -j`` and ``tc -j`` with canned JSON, records the rest."""

    def __init__(self, addr_json: str, qdisc_json: str = "[]"):
        self.calls: list[list[str]] = []
        self.addr_json, self.qdisc_json = addr_json, qdisc_json

    def __call__(self, argv, stdin=None):
        self.calls.append(argv)
        cmd = argv[2:]  # after nsenter --net=...
        out = ""
        if cmd[:3] == ["ip", "-j", "-4"]:
            out = self.addr_json
        elif cmd[:2] == ["ip", "-j"]:
            out = '[{"ifindex": 1, "ifname": "lo"}, {"ifindex": 7, "ifname": "eth0", "link_index": 8}]'
        elif cmd[:2] == ["tc", "-j"]:
            out = self.qdisc_json
        return subprocess.CompletedProcess(argv, 0, out, "")


def remote_context(p, runner):
    from cmlab.faults.base import FaultContext
    from cmlab.runtime.netns import ContainerNetns

    container = SimpleNamespace(name="c", id="cid", attrs={"State": {"Pid": 42}}, reload=lambda: None)
    ctx = FaultContext(p, SimpleNamespace(), REG.get("postgres-patroni"))  # type: ignore[arg-type]
    ctx._netns = {n.name: ContainerNetns(container, runner) for n in p.nodes}  # type: ignore[arg-type]
    return ctx


def test_vip_and_shaping_faults_on_a_remote_host_run_ip_and_tc_through_its_helper():
    from cmlab.faults.network import Bandwidth, qdisc_kinds, remove_qdiscs
    from cmlab.faults.vip import holds, set_address

    p = plan()
    vip = p.vip_of_az("az1")
    addr = f'[{{"ifindex": 7, "ifname": "eth0", "addr_info": [{{"local": "{p.node("a").address}"}}]}}]'
    runner = RecordingRunner(addr, '[{"kind": "tbf", "handle": "c1ab:", "root": true, "dev": "eth0"}, '
                                   '{"kind": "noqueue", "handle": "0:", "root": true, "dev": "lo"}]')
    ctx = remote_context(p, runner)
    assert not holds(ctx, "a", vip)
    set_address(ctx, "a", vip, present=True)
    assert runner.calls[-1] == ["nsenter", "--net=/proc/42/ns/net", "ip", "addr", "add", f"{vip.address}/24", "dev", "eth0"]

    Bandwidth(("a",), "1mbit").apply(ctx)
    assert ["nsenter", "--net=/proc/42/ns/net", "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "c1ab:",
            "tbf", "rate", "1mbit", "burst", "32768", "latency", "100ms"] in runner.calls
    ns = ctx.netns("a")
    assert qdisc_kinds(ns) == {"tbf": True}
    remove_qdiscs(ns)
    assert runner.calls[-1][2:] == ["tc", "qdisc", "del", "dev", "eth0", "root", "handle", "c1ab:"]  # ours only
    with pytest.raises(Exception, match="on another host"):
        Bandwidth(("a",), "1mbit", direction="ingress").apply(ctx)


def test_what_a_lab_made_on_a_host_is_named_for_down_to_report():
    p = plan()
    assert DockerRuntime.made_on(p, "h1") == ["cmlab-t1-a", "cmlab-t1-b", "cmlab-t1-router", "cmlab-t1-az1-access",
                                               "cmlab-t1-helper-h1"]
    assert DockerRuntime.made_on(p, "h3") == ["cmlab-t1-e", "cmlab-t1-helper-h3"]


def test_a_vip_fault_without_a_vip_named_takes_the_vip_of_the_primarys_az(tmp_path, monkeypatch):
    from cmlab.faults.nemesis import Nemesis

    monkeypatch.setenv("CMLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CMLAB_RESULTS_DIR", str(tmp_path))
    nemesis = Nemesis(plan(), None, REG.get("postgres-patroni"), 1)  # type: ignore[arg-type]
    monkeypatch.setattr(nemesis, "_one", lambda target: "c" if target == "primary" else target)
    assert nemesis.vip_duplicate("d").vip == "vip-az2"
    assert nemesis.vip_duplicate("a", "vip-az1").vip == "vip-az1"
