"""Labs across hosts, on one machine: three simulated Docker hosts (Debian's
docker.io in containers) joined into one swarm by ``up --init-swarm``, AZs on
overlay networks, faults through each host's helper container, probes through
each AZ's access container.

The quickstart lab is spread one node a host and the two-AZ lab over the
three hosts; kill-primary and an AZ split must keep their promises; the VIP's
ARP must stay within its host (the rule the topology check enforces); and a
host killed mid-lab must leave ``down`` saying what remains, then nothing once
the host is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cmlab import api
from cmlab.api import Lab
from cmlab.checkers.assertions import assert_failover, assert_no_lost_writes, assert_no_split_brain, assert_rto_under
from cmlab.pytest_plugin import worker_id
from cmlab.runtime.docker import DockerRuntime
from cmlab.runtime.simhosts import SimulatedHosts
from cmlab.state import state_root
from tests.e2e.conftest import EMPTY, ROOT, needs_root

pytestmark = needs_root


@pytest.fixture(scope="module")
def hosts(docker_client, request) -> Iterator[SimulatedHosts]:
    """Three simulated hosts of this worker's own; removed afterwards, and
    nothing of them may remain."""
    sim = SimulatedHosts(docker_client, f"e2e{worker_id(request.config)}", 3)
    sim.up()
    yield sim
    sim.down()
    assert sim.leftovers() == EMPTY, f"simulated hosts left objects: {sim.leftovers()}"


def across(tmp_path: Path, sim: SimulatedHosts, example: str, name: str) -> Path:
    """The example topology ``topologies/<example>.yaml`` on ``sim``'s hosts,
    renamed, its subnets left to the allocator."""
    data = yaml.safe_load((ROOT / "topologies" / f"{example}.yaml").read_text())
    data["name"] = name
    data["hosts"] = [h.topology_entry() for h in sim.hosts()]
    for az in data["azs"]:
        az.pop("subnet", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def leftovers_on_every_host(lab: Lab) -> dict[str, list[str]]:
    return DockerRuntime.for_plan(lab.plan, lab.client).leftovers(lab.plan.name)


def keeps_promises(lab: Lab, name: str) -> None:
    """One trial of scenario ``name`` keeps every promise of the scenario file."""
    scenario = api.scenario(name)
    run = api.run(lab, scenario, trials=1, seed=5)
    trial = run.trials[0]
    m = trial.metrics
    print(f"\n{lab.plan.name} {name}: {m.old_primary} -> {m.new_primary}; client RTO {m.client_rto_s} s, "
          f"detection {m.detection_s} s, promotion {m.promotion_s} s; {m.acked_writes} acked, {len(m.lost_writes)} lost")
    bound = scenario.rto_bound_s(lab.timing)
    if bound is not None:
        assert_rto_under(trial, bound)
    assert_failover(trial, scenario.failover)
    assert_no_lost_writes(trial)
    assert_no_split_brain(trial)


def up(path: Path, request) -> Lab:
    worker = worker_id(request.config)
    lab = Lab.from_topology(path, allocate=True, name=f"{path.stem}-{worker}"[:20] if worker != "main" else None)
    lab.up(init_swarm=True)
    return lab


def test_the_quickstart_one_node_a_host_fails_over_when_its_primary_is_killed_or_its_host_cut_off(hosts, tmp_path, request):
    lab = up(across(tmp_path, hosts, "quickstart-across-hosts", "e2e-qs-hosts"), request)
    try:
        # Each node's container is on its own host's engine, none on this machine's.
        runtime = lab.runtime
        assert sorted(n.host or "" for n in lab.plan.nodes) == ["h1", "h2", "h3"]
        for node in lab.plan.nodes:
            assert runtime.container(node) is not None
            assert DockerRuntime(lab.client).container(node) is None
        status = lab.status()
        assert status.ready and status.primary is not None

        # A lab without a VIP is measured through the client that seeks the primary.
        keeps_promises(lab, "kill-primary")
        # The primary's host loses the network: its node is cut off through that host's helper.
        keeps_promises(lab, "isolate-primary-host")
    finally:
        lab.down()
    assert leftovers_on_every_host(lab) == EMPTY
    assert not (state_root() / lab.plan.name).exists()


def test_the_two_az_lab_across_hosts_survives_an_az_split_and_a_lost_host(hosts, tmp_path, request):
    lab = up(across(tmp_path, hosts, "two-az-across-hosts", "e2e-2az-hosts"), request)
    removed = None
    try:
        assert {lab.plan.az("az1").host, lab.plan.az("az2").host, lab.plan.node("pg6").host} == {"h1", "h2", "h3"}
        keeps_promises(lab, "split-az-minority-primary")

        # An extra address (as a VIP is) on pg4 (h2) answers pg5 on the same
        # host, and not pg6 on h3: Swarm answers ARP only for what it assigned.
        az2 = lab.plan.az("az2")
        extra = str(list(az2.subnet.hosts())[60])
        assert lab.exec("pg4", ["ip", "addr", "add", f"{extra}/{az2.subnet.prefixlen}", "dev", "eth0"])[0] == 0
        assert lab.exec("pg5", ["ping", "-c", "2", "-W", "1", extra])[0] == 0
        assert lab.exec("pg6", ["ping", "-c", "2", "-W", "1", extra])[0] != 0

        # h3 is lost mid-lab: down removes what it reaches and says what remains.
        hosts.kill("h3")
        removed = api.down(lab.plan.name)
        assert set(removed.unreachable) == {"h3"}, removed
        assert lab.plan.node("pg6").container in removed.unreachable["h3"]  # it says what remains there
        assert removed.containers >= len(lab.plan.nodes) - 1
        assert (state_root() / lab.plan.name / "plan.json").is_file(), "down forgot the lab while h3 holds some of it"
    finally:
        if removed is None:
            lab.down()
    # h3 back: down again removes the rest.
    hosts.start("h3")
    again = api.down(lab.plan.name)
    assert again.unreachable == {} and again.left == [], again
    assert leftovers_on_every_host(lab) == EMPTY
    assert not (state_root() / lab.plan.name).exists()
