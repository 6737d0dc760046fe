"""The quickstart lab end to end: up, status, kill the primary, measure, down."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cmlab.api import Lab
from cmlab.engines.base import NodeRole
from cmlab.probes.writer import Writer, stored_seqs
from cmlab.wait import wait_for

from .conftest import quickstart_lab

pytestmark = pytest.mark.docker


lab = quickstart_lab("e2e-quick")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmlab.cli", *args], capture_output=True, text=True, timeout=120)


def test_status_shows_one_primary_a_sync_standby_and_the_vip_on_the_primary(lab: Lab):
    result = cli("status", lab.plan.name, "--json")
    assert result.returncode == 0, result.stderr
    st = json.loads(result.stdout)
    roles = sorted(n["role"] for n in st["nodes"])
    assert roles == ["primary", "standby", "sync standby"]
    assert st["ready"] is True
    assert st["vip_holders"] == {"vip-az1": [st["primary"]]}
    assert all(n["healthy"] for n in st["nodes"])


def test_status_manager_prints_patronis_own_account(lab: Lab):
    result = cli("status", lab.plan.name, "--json", "--manager")
    assert result.returncode == 0, result.stderr
    st = json.loads(result.stdout)
    cluster = json.loads(st["manager"]["patroni GET /cluster"])
    assert sorted(m["name"] for m in cluster["members"]) == ["pg1", "pg2", "pg3"]
    assert st["manager"]["etcd leader key"] == st["primary"]


def test_up_again_is_a_no_op(lab: Lab):
    before = {c.name: c.id for c in lab.runtime.containers(lab.plan.name)}
    t0 = time.monotonic()
    status = Lab(lab.plan, lab.engine, lab.client).up()
    assert status.ready
    assert time.monotonic() - t0 < 10
    assert {c.name: c.id for c in lab.runtime.containers(lab.plan.name)} == before


def test_exec_runs_in_the_node(lab: Lab):
    code, out = lab.exec("pg1", ["hostname"])
    assert (code, out.strip()) == (0, "pg1")


def test_killed_primary_fails_over_within_the_bound_and_loses_no_acknowledged_write(lab: Lab):
    """docker kill of the primary's container, with a writer through the VIP
    every 20 ms: the client-visible outage stays under ttl + loop_wait + 5 s and
    every acknowledged row is on the new primary."""
    timing = lab.timing
    params = lab.engine.params(lab.plan)
    bound_s = params.ttl + params.loop_wait + 5
    vip = lab.plan.vips[0]
    old = lab.wait_ready(timing.start_s).primary
    assert old is not None

    with Writer(lab.dsn(str(vip.address)), name="kill-primary", interval_s=0.02) as writer:
        wait_for(lambda: len(writer.acked()), lambda n: n >= 25, 10, 0.1, "acknowledged writes before the fault")
        lab.kill(old)
        t_fault = time.monotonic()  # the kill has returned: the container is gone
        new, _ = lab.wait_primary(timing.failover_s + timing.vip_s, not_on=old)
        t_promoted = time.monotonic()
        _, _ = wait_for(lambda: lab.runtime.vip_holders(lab.plan)[vip.name], lambda h: h == [new],
                        timing.vip_s + timing.failover_s, timing.poll_s, f"VIP on {new}")
        t_vip = time.monotonic()
        wait_for(lambda: writer.first_ack_after(t_vip), lambda w: w is not None, timing.failover_s, 0.1,
                 "an acknowledged write after the VIP moved")
    before = writer.last_ack_before(t_fault)
    after = writer.first_ack_after(t_fault)
    assert before is not None and after is not None
    outage = after.acked - before.acked
    print(f"\nkill {old}: outage through the VIP {outage:.2f} s (bound {bound_s} s); "
          f"new primary {new} seen after {t_promoted - t_fault:.2f} s; VIP on {new} after {t_vip - t_fault:.2f} s; "
          f"largest ack gap {writer.largest_gap():.2f} s; {len(writer.acked())} acked, "
          f"{sum(w.unknown for w in writer.writes)} unknown")
    assert after.node == new, f"the first write after the fault was acknowledged by {after.node}, not the new primary {new}"
    assert outage <= bound_s, f"outage {outage:.2f} s exceeds ttl + loop_wait + 5 = {bound_s} s"

    acked = {w.seq for w in writer.acked()}
    stored = stored_seqs(lab.dsn(new), "kill-primary")
    lost = sorted(acked - stored)
    assert not lost, f"{len(lost)} acknowledged writes are missing on the new primary {new}: {lost[:20]}"

    state = lab.engine.observe(lab.plan, lab.runtime.access(lab.plan))
    assert state.node(old).role is NodeRole.down
