"""The failover scenarios on the real openGauss + CM, when its packages are given.

Set CMLAB_OPENGAUSS_PACKAGE to the openGauss "All" package (or an install
tree) to run them; they are skipped, with that reason, otherwise (the
packages cannot be obtained on cmlab's own machines).
"""

from __future__ import annotations

import os

import pytest

from cmlab.api import Lab

from .conftest import example_topology, lab_up
from .test_failover_scenarios import measured

PACKAGE = os.environ.get("CMLAB_OPENGAUSS_PACKAGE")
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not PACKAGE, reason="CMLAB_OPENGAUSS_PACKAGE is not set: real openGauss packages are needed"),
]


@pytest.fixture(scope="module")
def cm_lab(docker_client, request, tmp_path_factory):
    path = example_topology(tmp_path_factory.mktemp("topo"), "opengauss-1az", "e2e-cm")
    yield from lab_up(request, path)


def test_the_cluster_comes_up_with_one_primary_and_the_vip_on_it(cm_lab: Lab):
    st = cm_lab.status()
    assert st.ready, st.not_ready
    assert st.vip_holders == {"vip-az1": [st.primary]}


@pytest.mark.parametrize("name", ["kill-primary", "freeze-primary-db", "isolate-primary", "vip-removed"])
def test_scenario_on_cm(cm_lab: Lab, name: str, tmp_path):
    measured(cm_lab, name, tmp_path)
