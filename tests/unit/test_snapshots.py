"""The key of a warm-start snapshot: what it depends on, and what it must not."""

from __future__ import annotations

from cmlab.engines.postgres_patroni import warm
from cmlab.engines.registry import default_registry
from cmlab.runtime.snapshots import snapshot_key
from cmlab.topology import loads

WARM = warm.PatroniWarmStart()
IMAGE = "sha256:" + "a" * 64

QUICKSTART = """
name: {name}
engine: postgres-patroni
azs: [{{name: az1, subnet: {subnet}}}]
nodes:
  - {{name: pg1, az: az1}}
  - {{name: pg2, az: az1}}
  - {{name: {third}, az: az1}}
parameters: {{ttl: {ttl}}}
"""


def key(name: str = "a", subnet: str = "10.213.10.0/24", third: str = "pg3", ttl: int = 10,
        image: str = IMAGE, warm_start: warm.PatroniWarmStart = WARM) -> str:
    plan = loads(QUICKSTART.format(name=name, subnet=subnet, third=third, ttl=ttl), default_registry())
    return snapshot_key(plan, warm_start, image)


def test_labs_that_differ_in_name_and_subnet_share_a_snapshot():
    assert key() == key(name="other-lab", subnet="10.99.0.0/24")


def test_a_parameter_a_node_name_the_image_or_the_engine_format_change_the_key():
    base = key()
    changed = {
        "parameter": key(ttl=11),
        "node": key(third="pg9"),
        "image": key(image="sha256:" + "b" * 64),
        "format": key(warm_start=type("Newer", (warm.PatroniWarmStart,), {"format": 99})()),
    }
    assert all(k != base for k in changed.values()), changed
    assert len(set(changed.values())) == len(changed)


def test_the_key_is_sixteen_hex_digits():
    k = key()
    assert len(k) == 16 and int(k, 16) >= 0
