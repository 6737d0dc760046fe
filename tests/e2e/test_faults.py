"""Faults on real containers, each observed, not assumed; and nothing left after heal.

Runs on the shared two-AZ lab (pg1, pg2, pg3 in az1; pg4, pg5 in az2). Every
test heals what it applied, and the module checks that heal leaves no
nftables table, qdisc, downed link or stray VIP in any namespace.
"""

from __future__ import annotations

import re
import time

import pytest

from cmlab.api import Lab
from cmlab.errors import FaultError, Unsupported
from cmlab.runtime.capabilities import capabilities
from cmlab.runtime.netns import ContainerNetns, host_rtnl
from cmlab.faults.network import QDISC_HANDLE, chains
from cmlab.faults.process import processes
from cmlab.wait import wait_for

pytestmark = pytest.mark.docker

#: The issue's target is 100 ms from call to effect; the assertion leaves room for a loaded CI runner.
EFFECT_BOUND_S = 1.0


@pytest.fixture
def lab(two_az_lab: Lab):
    caps = capabilities()
    for need in ("root", "nsenter", "nft"):
        if not caps[need].ok:
            pytest.skip(f"fault tests need {need}: {caps[need].detail}")
    nemesis = two_az_lab.nemesis(seed=7)
    nemesis.heal()
    yield two_az_lab
    nemesis.heal()
    assert_nothing_left(two_az_lab)


def assert_nothing_left(lab: Lab) -> None:
    """No cmlab table, cmlab qdisc, downed link or stray VIP in any running container."""
    for c in lab.runtime.containers(lab.plan.name):
        c.reload()
        if c.status != "running":
            continue
        ns = ContainerNetns(c)
        assert chains(ns) == [], f"{c.name}: nftables chains left: {chains(ns)}"
        tables = ns.run(["nft", "list", "tables"]).stdout
        assert "cmlab" not in tables, f"{c.name}: nftables table left: {tables}"
        assert "table ip nat" in tables or "docker" not in tables.lower()  # Docker's own DNS rules are left alone
        with ns.rtnl() as ipr:
            ours = [q for q in ipr.get_qdiscs() if q["handle"] == QDISC_HANDLE]
        assert not ours, f"{c.name}: qdisc left"
        with host_rtnl() as ipr:
            for _, name, peer in ns.interfaces():
                assert ipr.get_links(peer)[0].get_attr("IFLA_OPERSTATE") != "DOWN", f"{c.name} {name}: link left down"
    st = lab.status()
    for vip, holders in st.vip_holders.items():
        assert len(holders) <= 1, f"VIP {vip} left on several nodes: {holders}"


def tcp_open(lab: Lab, src: str, dst: str, port: int = 8008, timeout_s: int = 2) -> bool:
    """Whether src can open a TCP connection to dst (default: the Patroni REST port,
    which stays open while PostgreSQL restarts through a demotion)."""
    addr = lab.plan.node(dst).address
    code, _ = lab.exec(src, ["timeout", str(timeout_s), "bash", "-c", f"</dev/tcp/{addr}/{port}"])
    return code == 0


def udp_delivered(lab: Lab, src: str, dst: str, port: int = 9999) -> bool:
    """Send UDP datagrams from src to dst; True if dst received one."""
    listener = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                f"s.bind(('',{port}));s.settimeout(3)\n"
                "try:\n  s.recv(64);print('GOT')\nexcept OSError:\n  print('NONE')")
    c = lab.runtime.container(lab.plan.node(dst))
    exec_id = lab.client.api.exec_create(c.id, ["python3", "-c", listener])["Id"]
    stream = lab.client.api.exec_start(exec_id, stream=True)
    time.sleep(0.3)  # the listener binds; the stream is read below, bounded by its own 3 s timeout
    addr = lab.plan.node(dst).address
    sender = f"import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor _ in range(10):\n  s.sendto(b'x',('{addr}',{port}));time.sleep(0.1)"
    lab.exec(src, ["python3", "-c", sender])
    return b"GOT" in b"".join(stream)


def test_isolating_a_node_cuts_tcp_and_heal_restores_it(lab: Lab):
    nemesis = lab.nemesis()
    assert tcp_open(lab, "pg2", "pg1")
    applied = nemesis.apply(nemesis.isolate("pg1"))
    print(f"\nisolate in effect after {1000 * (applied.t_effect - applied.t_call):.1f} ms")
    assert applied.t_effect - applied.t_call < EFFECT_BOUND_S
    assert not tcp_open(lab, "pg2", "pg1")
    assert not tcp_open(lab, "pg4", "pg1")  # across the router too
    assert tcp_open(lab, "pg2", "pg3")  # the others still talk
    assert [r["kind"] for r, seen in nemesis.active()] == ["partition"]
    assert all(seen for _, seen in nemesis.active())
    t0 = time.monotonic()
    nemesis.heal()
    print(f"heal in effect after {1000 * (time.monotonic() - t0):.1f} ms")
    assert tcp_open(lab, "pg2", "pg1")
    assert nemesis.active() == []


def test_applying_the_same_fault_twice_is_harmless(lab: Lab):
    nemesis = lab.nemesis()
    fault = nemesis.cut("pg1", "pg2")
    nemesis.apply(fault)
    nemesis.apply(fault)
    assert len(nemesis.active()) == 1
    assert len(chains(ContainerNetns(lab.runtime.container(lab.plan.node("pg2"))))) == 1


def test_a_one_way_cut_blocks_one_direction_only(lab: Lab):
    nemesis = lab.nemesis()
    nemesis.apply(nemesis.cut("pg1", "pg2", one_way=True))
    assert not udp_delivered(lab, "pg1", "pg2")
    assert udp_delivered(lab, "pg2", "pg1")


def test_splitting_azs_at_the_router(lab: Lab):
    nemesis = lab.nemesis()
    assert tcp_open(lab, "pg1", "pg4")
    nemesis.apply(nemesis.split_azs(["az2"]))
    assert not tcp_open(lab, "pg1", "pg4")
    assert not tcp_open(lab, "pg5", "pg2")
    assert tcp_open(lab, "pg1", "pg2") and tcp_open(lab, "pg4", "pg5")  # inside an AZ all is well
    nemesis.heal()
    assert tcp_open(lab, "pg1", "pg4")


def test_measured_loss_rate_is_within_tolerance(lab: Lab):
    nemesis = lab.nemesis()
    nemesis.apply(nemesis.loss("pg1", 30, peers="pg2"))
    count = 400
    _, out = lab.exec("pg1", ["ping", "-q", "-n", "-c", str(count), "-i", "0.005", "-W", "1", str(lab.plan.node("pg2").address)])
    loss = float(re.search(r"([\d.]+)% packet loss", out).group(1))
    print(f"\nloss 30% applied, {loss:.1f}% measured over {count} echo requests")
    # Binomial sigma for n=400, p=0.3 is 2.3 points: 4 sigma either way.
    assert 20.8 <= loss <= 39.2, out
    _, out = lab.exec("pg1", ["ping", "-q", "-n", "-c", "50", "-i", "0.005", "-W", "1", str(lab.plan.node("pg3").address)])
    assert " 0% packet loss" in out, "loss leaked to a peer that was not named"


def _transfer_rate_mbit(lab: Lab, size: int) -> float:
    """pg1 sends ``size`` bytes to pg2 over TCP: the rate pg2 received them at, Mbit/s."""
    receiver = ("import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                "s.bind(('',9998));s.listen(1);s.settimeout(20);c,_=s.accept();n=0;t0=None\n"
                "while True:\n  b=c.recv(65536)\n  t0=t0 or time.monotonic()\n  n+=len(b)\n  if not b: break\n"
                "print(n, time.monotonic()-t0)")
    c = lab.runtime.container(lab.plan.node("pg2"))
    exec_id = lab.client.api.exec_create(c.id, ["python3", "-c", receiver])["Id"]
    stream = lab.client.api.exec_start(exec_id, stream=True)
    time.sleep(0.3)
    addr = lab.plan.node("pg2").address
    lab.exec("pg1", ["python3", "-c", f"import socket;s=socket.create_connection(('{addr}',9998));s.sendall(b'x'*{size});s.close()"])
    n, seconds = b"".join(stream).split()
    assert int(n) == size
    return int(n) * 8 / float(seconds) / 1e6


@pytest.mark.parametrize("shaped, direction", [("pg1", "egress"), ("pg2", "ingress")])
def test_measured_bandwidth_matches_the_limit(lab: Lab, shaped: str, direction: str):
    """pg1 sends to pg2: shaping pg1's egress or pg2's ingress limits it alike."""
    if not capabilities()["tbf"].ok:
        pytest.skip(f"tbf: {capabilities()['tbf'].detail}")
    nemesis = lab.nemesis()
    applied = nemesis.apply(nemesis.bandwidth(shaped, "2mbit", direction))
    assert nemesis.active()[0][1] is True, "the fault is observed in effect"
    # The limit caps every transfer; a transfer can only fall short of it when the 2-core host is
    # busy (0.85 Mbit/s seen once in CI beside the other worker), so the best of three must reach it.
    rates = []
    for _ in range(3):
        rates.append(_transfer_rate_mbit(lab, 500_000))
        print(f"\nbandwidth 2mbit {direction} on {shaped}, {rates[-1]:.2f} Mbit/s measured")
        assert rates[-1] <= 2.6, "the limit holds on every transfer"
        if rates[-1] >= 1.5:
            break
    assert 1.5 <= max(rates) <= 2.6, rates
    nemesis.undo(applied.fault.key)
    with host_rtnl() as ipr:
        assert not [q for q in ipr.get_qdiscs() if q["handle"] == QDISC_HANDLE], "undo leaves no qdisc of cmlab's on the host"


def test_delay_is_applied_or_reported_unsupported_with_the_reason(lab: Lab):
    nemesis = lab.nemesis()
    fault = nemesis.delay("pg1", 50)
    if capabilities()["netem"].ok:
        nemesis.apply(fault)
        _, out = lab.exec("pg1", ["ping", "-c", "5", "-i", "0.2", str(lab.plan.node("pg2").address)])
        avg = float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))
        assert avg >= 45, out
    else:
        with pytest.raises(Unsupported, match="netem"):
            nemesis.apply(fault)
        assert nemesis.active() == []


def test_link_down_cuts_the_node_and_up_restores_it(lab: Lab):
    nemesis = lab.nemesis()
    nemesis.apply(nemesis.link_down("pg3"))
    assert not tcp_open(lab, "pg1", "pg3")
    nemesis.heal()
    assert tcp_open(lab, "pg1", "pg3")


def test_a_frozen_process_shows_state_t_and_thaws(lab: Lab):
    nemesis = lab.nemesis()
    ctx = nemesis.ctx
    fault = nemesis.freeze("pg5", "database")
    nemesis.apply(fault)
    states = {p.state[0] for p in processes(ctx, "pg5") if p.name == "postgres"}
    assert states == {"T"}, states
    assert nemesis.active()[0][1] is True
    nemesis.heal()
    states = {p.state[0] for p in processes(ctx, "pg5") if p.name == "postgres"}
    assert "T" not in states


def kill_agent(lab: Lab, node: str) -> None:
    """Kill Patroni on ``node`` and wait (10 s) for the supervisor's new one."""
    nemesis = lab.nemesis()
    before = {p.pid for p in processes(nemesis.ctx, node) if p.name == "patroni"}
    nemesis.apply(nemesis.kill(node, "agent"))
    assert nemesis.active() == []  # a kill is an instant, not a standing fault
    after, _ = wait_for(lambda: {p.pid for p in processes(nemesis.ctx, node) if p.name == "patroni"},
                        lambda pids: bool(pids) and not pids & before, 10, 0.2, "a new patroni process")
    assert after


def test_killed_agent_is_restarted_by_the_supervisor(lab: Lab):
    # A standby's: on the primary, Patroni 3.0.2 comes back asynchronous (next test).
    lab.wait_ready(lab.timing.start_s)
    kill_agent(lab, next(r.node for r in lab.status().rows if r.role == "standby"))
    lab.wait_ready(lab.timing.start_s)


def test_patroni_restarted_on_the_primary_leaves_it_asynchronous_until_repaired(lab: Lab):
    """Patroni 3.0.2 rewrites postgresql.conf without synchronous_standby_names
    when it starts, and keeps the /sync key, which it never repairs
    (patroni/patroni#2877, fixed in 3.2.0): the lab names the state, and
    `repair` on the primary resets it. Seen in CI, where it left the shared
    lab unready for every later test."""
    status = lab.wait_ready(lab.timing.start_s)
    primary, sync_before = status.primary, sync_standbys(status)
    kill_agent(lab, primary)
    # The new Patroni's first HA loop drops synchronous_standby_names; its pick is the
    # standby furthest ahead. The key's standby: stuck. Another: Patroni sets it and
    # moves the key, the only way 3.0.2 leaves the state. Deadline: loops, with slack.
    status, _ = wait_for(lab.status, lambda s: "patroni/patroni#2877" in s.not_ready or (
                         s.ready and sync_standbys(s) != sync_before),
                         2 * lab.timing.failover_s, lab.timing.poll_s, "the asynchronous primary named",
                         lambda s: s.not_ready or f"ready, sync standbys {sync_standbys(s)}")
    assert status.primary == primary
    if not status.ready:
        lab.engine.repair(lab.plan, lab.runtime.access(lab.plan), primary)
        status = lab.wait_ready(lab.timing.start_s)
    assert status.primary == primary and sync_standbys(status)


def sync_standbys(status) -> set[str]:
    return {r.node for r in status.rows if r.role == "sync standby"}


def primary_vip_and_other(lab: Lab):
    """On a ready lab: the primary, its AZ's VIP and another node of that AZ."""
    lab.wait_ready(lab.timing.start_s)
    primary = lab.status().primary
    vip = lab.plan.vip_of_az(lab.plan.node(primary).az)
    other = next(n.name for n in lab.plan.nodes if n.az == vip.az and n.name != primary)
    return primary, vip, other


def test_a_duplicate_vip_lands_where_it_was_put_and_heal_removes_it(lab: Lab):
    nemesis = lab.nemesis()
    primary, vip, other = primary_vip_and_other(lab)
    nemesis.apply(nemesis.vip_duplicate(other, vip.name))
    assert sorted(lab.runtime.vip_holders(lab.plan)[vip.name]) == sorted([primary, other])
    nemesis.heal()
    assert lab.runtime.vip_holders(lab.plan)[vip.name] == [primary]


def test_vip_remove_takes_it_off_the_holder(lab: Lab):
    nemesis = lab.nemesis()
    lab.wait_ready(lab.timing.start_s)
    primary = lab.status().primary
    vip = lab.plan.vip_of_az(lab.plan.node(primary).az)
    nemesis.apply(nemesis.vip_remove(vip.name))
    assert primary not in lab.runtime.vip_holders(lab.plan)[vip.name]


def test_the_vip_watch_is_told_of_a_vip_removed_and_put_back_as_it_happens(lab: Lab):
    from cmlab.probes.loop import ProbeLoop
    from cmlab.probes.vip_watch import VipWatch

    nemesis = lab.nemesis()
    primary, vip, _ = primary_vip_and_other(lab)
    # No periodic reading during the test: whatever it records comes from the kernels' notices.
    watch = VipWatch(lab.plan, lab.runtime, refresh_s=60.0)
    loop = ProbeLoop([watch], name="vip-watch-test")
    loop.start()
    try:
        assert watch.samples and watch.samples[-1].value[vip.name] == [primary]
        applied = nemesis.apply(nemesis.vip_remove(vip.name))
        gone, _ = wait_for(lambda: [s for s in watch.samples if primary not in s.value[vip.name]], bool, 2.0, 0.02,
                           "a VIP sample without the primary")
        assert gone[0].t - applied.t_effect < 0.2, "seen when it happened, not at a later reading"
        # The manager puts it back (vip-manager's own check); the watch is told of that too.
        back, _ = wait_for(lambda: [s for s in watch.samples if s.t > gone[0].t and s.value[vip.name] == [primary]], bool,
                           lab.timing.vip_repair_s, 0.1, "the VIP back on the primary")
        assert len(watch.samples) < 20, "a sample per change, not one per tick"
    finally:
        loop.stop()
    assert watch._readers == {}, "stopping the loop closed every namespace handle"


def test_vip_flap_toggles_in_the_background_and_stops_with_the_vip_as_it_was(lab: Lab):
    from cmlab.events import EventLog
    from cmlab.probes.vip_watch import VipWatch

    nemesis = lab.nemesis()
    primary, vip, other = primary_vip_and_other(lab)
    watch = VipWatch(lab.plan, lab.runtime)
    seen: list[bool] = []
    t0 = time.monotonic()
    with nemesis.start_vip_flap(vip.name, other, period_s=0.3, duration_s=30) as flap:
        # The caller goes on while the VIP churns: it watches it, 2 s and until the VIP has come
        # and gone (a loaded host toggles more slowly), at most 10 s.
        while (time.monotonic() - t0 < 2.0 or flap.toggles < 3) and time.monotonic() - t0 < 10.0:
            seen.append(other in watch.holders()[vip.name])
            time.sleep(0.05)  # the watcher's cadence
        t_leave = time.monotonic()
    watch.close()
    slowest = max(flap.toggle_s)
    assert time.monotonic() - t_leave < 2 + 2 * slowest, "leaving the with block stops the flap at once, not after duration_s"
    # About one toggle per 0.3 s; a loaded host makes each toggle slower, and the bound allows for this run's slowest.
    assert flap.toggles >= int((t_leave - t0) / (0.3 + slowest)) - 1, flap.toggle_s
    assert True in seen and False in seen, "the VIP came and went on the flapped node"
    assert other not in lab.runtime.vip_holders(lab.plan)[vip.name], "it did not hold the VIP before: it does not after"
    kinds = [(e["event"], e.get("kind")) for e in EventLog.of_lab(lab.plan.name).read() if e.get("key", "").startswith("vip_flap_")]
    assert kinds[-2:] == [("fault-applied", "vip-flap"), ("fault-healed", "vip-flap")]


def test_bad_targets_and_faults_that_make_no_sense_are_refused(lab: Lab):
    nemesis = lab.nemesis()
    with pytest.raises(FaultError, match="unknown target 'pg9'"):
        nemesis.isolate("pg9")
    with pytest.raises(FaultError, match="no process 'gaussdb'"):
        nemesis.apply(nemesis.kill("pg1", "gaussdb"))
    with pytest.raises(FaultError, match="unknown AZ 'az7'"):
        nemesis.split_azs(["az7"])
    assert nemesis.active() == []


def test_the_event_log_records_apply_and_heal_on_the_monotonic_clock(lab: Lab):
    nemesis = lab.nemesis()
    t0 = time.monotonic()
    nemesis.apply(nemesis.isolate("pg4"))
    nemesis.heal()
    events = [e for e in nemesis.events.read() if e["t"] >= t0]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["fault-applied", "healed"], kinds
    assert events[0]["t_call"] <= events[0]["t"] <= events[1]["t"]


def test_the_cli_lists_and_heals_faults(lab: Lab):
    import subprocess
    import sys

    def cli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "cmlab.cli", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = cli("fault", "isolate", "-l", lab.plan.name, "pg2")
    assert "partition" in out and "ms after the call" in out
    assert "partition" in cli("faults", "-l", lab.plan.name)
    assert "healed 1 fault(s)" in cli("heal", "-l", lab.plan.name)


def test_a_gratuitous_arp_for_the_wrong_node_redirects_the_clients(lab: Lab):
    """The host (the client) learns the VIP at the wrong node's MAC address."""
    import subprocess

    if not capabilities()["arping"].ok:
        pytest.skip(f"arping: {capabilities()['arping'].detail}")
    nemesis = lab.nemesis()
    primary, vip, other = primary_vip_and_other(lab)
    import socket

    socket.create_connection((str(vip.address), 5432), timeout=2).close()  # the host learns the VIP's MAC

    def mac_of_vip() -> str:
        out = subprocess.run(["ip", "neigh", "show", str(vip.address)], capture_output=True, text=True).stdout
        m = re.search(r"lladdr (\S+)", out)
        return m.group(1) if m else ""

    _, other_mac = lab.exec(other, ["cat", f"/sys/class/net/{vip_iface(lab, other)}/address"])
    assert mac_of_vip() != other_mac.strip()
    nemesis.apply(nemesis.vip_garp(other, vip.name))
    assert mac_of_vip() == other_mac.strip()
    nemesis.apply(nemesis.vip_garp(primary, vip.name))  # put the clients right again
    assert mac_of_vip() != other_mac.strip()


def vip_iface(lab: Lab, node: str) -> str:
    _, out = lab.exec(node, ["ip", "-o", "-4", "addr", "show"])
    addr = str(lab.plan.node(node).address)
    return next(line.split()[1] for line in out.splitlines() if f" {addr}/" in line)
