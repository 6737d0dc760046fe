"""Run bundles and replay's comparisons (no Docker)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
import zstandard

from cmlab.archive import unpack
from cmlab.bundle import LAB_DIR, pack, plan_of, scrub
from cmlab.engines.registry import default_registry
from cmlab.errors import CmlabError
from cmlab.replay import compare, manifest_differences, within
from cmlab.topology import load
from cmlab.topology.resolve import loads

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [p.stem for p in (ROOT / "topologies").glob("*.yaml")])
def test_the_bundled_topology_resolves_to_the_plan_that_ran(name):
    plan = load(ROOT / "topologies" / f"{name}.yaml", default_registry())
    assert loads(yaml.safe_dump(plan.to_topology()), default_registry()) == plan


def test_secrets_are_scrubbed_from_configs_logs_and_sql():
    text = ("superuser:\n  username: postgres\n  password: s3cret\nPGPASSWORD=hunter2\n"
            "dsn host=a password=abc user=b\n{\"password\": \"xyz\"}\nCREATE USER u WITH PASSWORD 'Gauss@123';\n"
            "api_token: t0k\nnothing secret here: yes\n")
    clean = scrub(text)
    for secret in ("s3cret", "hunter2", "abc", "xyz", "Gauss@123", "t0k"):
        assert secret not in clean
    assert "username: postgres" in clean and "user=b" in clean and "nothing secret here: yes" in clean


def test_manifest_differences_name_each_package_changed_added_or_removed():
    before = "libpq5=15.8-0+deb12u1\npatroni=3.0.2-1\netcd-server=3.4.23-4\n"
    after = "libpq5=15.10-0+deb12u1\npatroni=3.0.2-1\nvip-manager=2.0\n"
    assert manifest_differences(before, after) == ["libpq5: 15.8-0+deb12u1 -> 15.10-0+deb12u1",
                                                   "etcd-server: removed", "vip-manager: added"]
    assert manifest_differences(before, before) == []


def test_timings_agree_within_two_seconds_or_half_and_verdicts_exactly():
    assert within(10.0, 14.9) and not within(10.0, 15.1) and within(1.0, 2.9) and not within(1.0, 3.1)
    assert within(None, None) and not within(None, 3.0)
    before = {"trials": [{"trial": 1, "client_rto_s": 10.0, "verdicts": {"no_lost_writes": True, "failover_as_expected": True}}]}
    same = {"trials": [{"trial": 1, "client_rto_s": 12.0, "verdicts": {"no_lost_writes": True, "failover_as_expected": True}}]}
    flipped = {"trials": [{"trial": 1, "client_rto_s": 30.0, "verdicts": {"no_lost_writes": False, "failover_as_expected": True}}]}
    rows = compare(before, same)
    assert all(r.ok for r in rows if r.kind == "verdict")
    assert next(r for r in rows if r.name == "client_rto_s").ok
    rows = compare(before, flipped)
    assert [r.name for r in rows if r.kind == "verdict" and not r.ok] == ["no_lost_writes"]
    assert not next(r for r in rows if r.name == "client_rto_s").ok
    missing = compare(before, {"trials": []})
    assert not any(r.ok for r in missing if r.kind == "verdict")


def fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "20261204T000000Z-kill-primary"
    plan = load(ROOT / "topologies" / "quickstart.yaml", default_registry())
    (run / LAB_DIR).mkdir(parents=True)
    (run / LAB_DIR / "plan.json").write_text(plan.to_json())
    (run / "run.json").write_text(json.dumps({"scenario": "kill-primary", "seed": 3}))
    (run / "trial-01").mkdir()
    (run / "trial-01" / "history.jsonl").write_text("{}\n")
    return run


def test_a_run_directory_packs_into_one_file_and_unpacks_whole(tmp_path):
    run = fake_run(tmp_path)
    out = pack(run, tmp_path / "b.tar.zst")
    assert out.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    back = unpack(out, tmp_path / "elsewhere")
    assert back.name == run.name and plan_of(back) == plan_of(run)
    assert (back / "trial-01" / "history.jsonl").read_text() == "{}\n"
    assert not (run / "images.tar").exists()


def test_what_is_not_a_bundle_is_refused(tmp_path):
    with pytest.raises(CmlabError, match="not a run bundle"):
        pack(tmp_path, tmp_path / "x.tar.zst")
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"not zstd at all")
    with pytest.raises(CmlabError, match="refused as a cmlab bundle"):
        unpack(junk, tmp_path / "u")
    # a tar that escapes its directory is refused (cmlab.archive checks every member)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    evil = tmp_path / "evil.tar.zst"
    evil.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    with pytest.raises(CmlabError, match="refused as a cmlab bundle"):
        unpack(evil, tmp_path / "v")
    assert not (tmp_path / "escape.txt").exists()
