"""The failover scenarios on the real openGauss + CM, when its packages are given.

Set CMLAB_OPENGAUSS_PACKAGE to the openGauss "All" package (or to a server
package or install tree, with CMLAB_OPENGAUSS_OM naming OM) to run them; they
are skipped, with that reason, otherwise (release packages cannot be
downloaded on cmlab's own machines; a local build from public source can be
given the same way).
"""

from __future__ import annotations

import os

import pytest

from cmlab.api import Lab

from .conftest import example_lab
from .test_failover_scenarios import measured

PACKAGE = os.environ.get("CMLAB_OPENGAUSS_PACKAGE")
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not PACKAGE, reason="CMLAB_OPENGAUSS_PACKAGE is not set: real openGauss packages are needed"),
]


cm_lab = example_lab("opengauss-1az", "e2e-cm")


def test_the_cluster_comes_up_with_one_primary_and_the_vip_on_it(cm_lab: Lab):
    st = cm_lab.status()
    assert st.ready, st.not_ready
    assert st.vip_holders == {"vip-az1": [st.primary]}


#: isolate-primary: 5 trials on session 11's build, 12.0 to 19.8 s, within the 29 s bound; the longer ones lost the
#: CMS primary with the DN primary (the trials' quorum_leader). Earlier builds saw 33 s, or none within the window,
#: on one trial each. CM leaves the isolated primary and its VIP up (no enable_fence_dn): duplicate-VIP intervals.
@pytest.mark.parametrize("name", ["kill-primary", "freeze-primary-db",
                                  "isolate-primary", "vip-removed",
                                  "kill-quorum-leader", "isolate-quorum-leader"])
def test_scenario_on_cm(cm_lab: Lab, name: str, tmp_path):
    measured(cm_lab, name, tmp_path)


def test_cm_ctl_show_names_the_primary_as_the_float_ip_holder(cm_lab: Lab):
    """Checks the `cm_ctl show` parser, built from ctl_show.cpp's print format
    (no documented sample), against the real output."""
    st = cm_lab.status()
    show = cm_lab.engine.show(cm_lab.plan, cm_lab.runtime.access(cm_lab.plan))  # type: ignore[attr-defined]
    assert show.connected
    assert show.vip_holders() == {str(v.address): [st.primary] for v in cm_lab.plan.vips}
    assert len(show.network) == len(cm_lab.plan.nodes) and not show.cut_links()


def test_each_dn_names_itself_as_its_node(cm_lab: Lab):
    """The probes tell which node acknowledged a write by the engine's identity SQL; a
    standby's build copies the primary's pgxc_node_name, so that must not be it."""
    from cmlab.engines.opengauss_cm.engine import as_omm

    for node in cm_lab.plan.nodes:
        code, out = cm_lab.exec(node.name, as_omm(["gsql", "-d", "postgres", "-At", "-c",
                                                   f"select {cm_lab.engine.node_identity_sql}"]))
        assert code == 0 and out.strip().splitlines()[-1] == node.name, out


cm_3az_lab = example_lab("opengauss-3az", "e2e-cm3az")


#: The 7-node lab starves a 2-core host: 7 cm_server and 7 cm_agent take the CPU between them (load average
#: about 175 seen here), so CM's timers fire late and what follows is not CM at its design point.
STARVED = "on a 2-core host the 7-node lab runs CPU-starved (load average ~175)"
MAJORITY_FAILS_OVER_AFTER_HEAL = pytest.mark.xfail(reason=(
    "seen on CM 6.0.0 (2026-12-04, 1 trial, " + STARVED + "): og1 kept the primary through the split, but after "
    "the heal CM promoted og4 (az2) at 129 s and 82 writes og1 had acknowledged were lost; with sync_num 3 (2026-12-05, "
    "1 trial): again og4 promoted after the heal, at 80 s, 0 lost, but writes resumed only at 497 s"), strict=False)


@pytest.mark.parametrize("name", [pytest.param("split-az-majority-primary", marks=MAJORITY_FAILS_OVER_AFTER_HEAL),
                                  "split-az-minority-primary"])
def test_az_split_on_cm(cm_3az_lab: Lab, name: str, tmp_path):
    measured(cm_3az_lab, name, tmp_path)


cm_two_node_lab = example_lab("opengauss-two-node", "e2e-cm2n")


@pytest.mark.parametrize("name", ["kill-primary", "gateway-loss"])
def test_two_node_scenario_on_cm(cm_two_node_lab: Lab, name: str, tmp_path):
    measured(cm_two_node_lab, name, tmp_path)


cm_cascade_lab = example_lab("opengauss-cascade", "e2e-cmcas")


def test_cascade_upstream_killed_on_cm(cm_cascade_lab: Lab, tmp_path):
    """CM does not fail a cascade standby over; once its upstream is back it streams again."""
    measured(cm_cascade_lab, "kill-cascade-upstream", tmp_path)


cm_share_disk_lab = example_lab("opengauss-share-disk", "e2e-cmdisk")


@pytest.mark.parametrize("name", ["voting-disk-readonly", "voting-disk-detached"])
def test_voting_disk_loss_shorter_than_disk_timeout_on_cm(cm_share_disk_lab: Lab, name: str, tmp_path):
    measured(cm_share_disk_lab, name, tmp_path)
