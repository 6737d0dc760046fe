"""The 2-AZ example (3 + 2) comes up, and its AZs talk only through the router."""

from __future__ import annotations

import pytest

from cmlab.api import Lab

pytestmark = pytest.mark.docker


@pytest.fixture
def lab(two_az_lab):
    return two_az_lab


def test_two_az_lab_is_ready_with_the_vip_of_the_primarys_az_only(lab: Lab):
    st = lab.status()
    assert st.ready, st.not_ready
    primary = st.primary
    assert primary is not None
    az = lab.plan.node(primary).az
    for vip in lab.plan.vips:
        assert st.vip_holders[vip.name] == ([primary] if vip.az == az else [])
    assert sorted(r.role for r in st.rows).count("primary") == 1


def test_traffic_between_azs_goes_through_the_router(lab: Lab):
    router = lab.plan.az("az1").router_address
    target = lab.plan.node("pg4").address  # in az2
    code, out = lab.exec("pg1", ["ip", "route", "get", str(target)])
    assert code == 0 and f"via {router}" in out, out
    code, out = lab.exec("pg1", ["ping", "-c", "1", "-W", "2", str(target)])
    assert code == 0, out
