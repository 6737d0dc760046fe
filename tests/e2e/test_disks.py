"""Loop-device disks: shared by the nodes, and their faults observed from inside."""

from __future__ import annotations

import re

import pytest

from cmlab.api import Lab
from cmlab.errors import FaultError
from cmlab.runtime.capabilities import capabilities

pytestmark = pytest.mark.docker


@pytest.fixture
def lab(two_az_lab: Lab):
    if not (capabilities()["root"].ok and capabilities()["loop"].ok):
        pytest.skip("loop-device disks need root and /dev/loop-control")
    nemesis = two_az_lab.nemesis()
    yield two_az_lab
    nemesis.heal()


def dd(lab: Lab, node: str, args: str) -> tuple[int, str]:
    return lab.exec(node, ["bash", "-c", f"dd {args} 2>&1"])


def test_a_block_disk_is_shared_by_every_node(lab: Lab):
    for node in ("pg1", "pg4"):
        code, out = lab.exec(node, ["test", "-b", "/dev/cmlab-voting"])
        assert code == 0, f"{node}: no /dev/cmlab-voting"
    code, out = lab.exec("pg1", ["bash", "-c", "printf 'cmlab-slot-1%500s' | dd of=/dev/cmlab-voting bs=512 seek=2048 conv=sync oflag=direct 2>&1"])
    assert code == 0, out
    code, out = lab.exec("pg4", ["bash", "-c", "dd if=/dev/cmlab-voting bs=512 skip=2048 count=1 iflag=direct 2>/dev/null | head -c 12"])
    assert (code, out) == (0, "cmlab-slot-1")


def test_a_read_only_disk_refuses_writes_until_healed(lab: Lab):
    nemesis = lab.nemesis()
    nemesis.apply(nemesis.disk_readonly("voting"))
    code, out = dd(lab, "pg2", "if=/dev/zero of=/dev/cmlab-voting bs=512 count=1 seek=4096 oflag=direct")
    assert code != 0 and "error writing" in out, out
    nemesis.heal()
    code, out = dd(lab, "pg2", "if=/dev/zero of=/dev/cmlab-voting bs=512 count=1 seek=4096 oflag=direct")
    assert code == 0, out


def test_a_detached_disk_fails_every_io_and_comes_back_with_its_data(lab: Lab):
    nemesis = lab.nemesis()
    lab.exec("pg1", ["bash", "-c", "printf 'kept%508s' | dd of=/dev/cmlab-voting bs=512 seek=8192 conv=sync oflag=direct"])
    nemesis.apply(nemesis.disk_detach("voting"))
    code, out = dd(lab, "pg3", "if=/dev/cmlab-voting of=/dev/null bs=512 skip=8192 count=1 iflag=direct")
    assert code != 0 or "0+0 records in" in out, out
    nemesis.heal()
    code, out = lab.exec("pg3", ["bash", "-c", "dd if=/dev/cmlab-voting bs=512 skip=8192 count=1 iflag=direct 2>/dev/null | head -c 4"])
    assert (code, out) == (0, "kept")


def test_filling_a_filesystem_disk_reaches_the_percentage_and_heal_frees_it(lab: Lab):
    nemesis = lab.nemesis()

    def used(node: str) -> int:
        _, out = lab.exec(node, ["df", "--output=pcent", "/mnt/data"])
        return int(re.search(r"(\d+)%", out).group(1))

    before = used("pg1")
    nemesis.apply(nemesis.disk_fill("data", 90))
    assert 90 <= used("pg1") <= 92 and used("pg2") == used("pg1")  # one filesystem, two nodes
    code, _ = lab.exec("pg3", ["test", "-d", "/mnt/data"])
    assert code != 0, "the data disk is only on pg1 and pg2"
    nemesis.heal()
    assert used("pg1") == before


def test_disk_faults_refuse_what_makes_no_sense(lab: Lab):
    nemesis = lab.nemesis()
    with pytest.raises(FaultError, match="raw block device"):
        nemesis.apply(nemesis.disk_fill("voting", 50))
    with pytest.raises(FaultError, match="no disk 'nope'"):
        nemesis.disk_detach("nope")
