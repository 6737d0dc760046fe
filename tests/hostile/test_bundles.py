"""Hostile bundles: each is refused with one clear message, writes nothing
outside the unpack directory, leaves nothing behind, touches no lab and no
image tag of this host."""

from __future__ import annotations

import io
from ipaddress import IPv4Network
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cmlab import api
from cmlab import replay as replay_mod
from cmlab.images import tags as image_tags
from cmlab.archive import MAX_BYTES, BundleRefused, unpack
from cmlab.bundle import pack
from cmlab.errors import CmlabError
from cmlab.runtime.docker import DockerRuntime

from .forge import RUN, TAR_TRICKS, pack_dir, run_members, tar_of, valid_run, zstd_bomb


def assert_nothing_left(parent: Path) -> None:
    assert not parent.exists() or not any(parent.iterdir()), list(parent.rglob("*"))[:5]


@pytest.mark.parametrize("trick", sorted(TAR_TRICKS))
def test_a_tar_trick_is_refused_before_anything_is_written_outside(trick, tmp_path, marker):
    marker.parent.mkdir(parents=True)
    build, words = TAR_TRICKS[trick]
    bundle = tar_of(build(run_members(valid_run(tmp_path)), marker), tmp_path / f"{trick}.tar.zst")
    with pytest.raises(BundleRefused) as caught:
        unpack(bundle, tmp_path / "unpack")
    message = str(caught.value)
    print(f"\n{trick}: {message}")
    assert words in message and "\n" not in message and str(bundle) in message
    assert not marker.exists() and list(marker.parent.iterdir()) == []
    assert_nothing_left(tmp_path / "unpack")


def test_a_zstd_bomb_stops_at_the_cap_and_leaves_nothing(tmp_path):
    bomb = zstd_bomb(tmp_path / "bomb.tar.zst", gib=4)
    assert bomb.stat().st_size < 1024**2
    t0 = time.monotonic()
    with pytest.raises(BundleRefused, match="MiB"):
        unpack(bomb, tmp_path / "unpack")
    print(f"\n4 GiB bomb of {bomb.stat().st_size} bytes refused in {time.monotonic() - t0:.2f} s")
    assert_nothing_left(tmp_path / "unpack")


def test_many_files_under_the_member_cap_stop_at_the_total_cap_while_streaming(tmp_path):
    chunk = bytes(8 * 1024**2)
    members = run_members(valid_run(tmp_path))
    members += [(tarfile.TarInfo(f"{RUN}/fill{i}"), chunk) for i in range(MAX_BYTES // len(chunk) + 2)]
    for info, data in members[-(MAX_BYTES // len(chunk) + 2):]:
        info.size = len(data)
    bundle = tar_of(members, tmp_path / "fill.tar.zst")
    with pytest.raises(BundleRefused, match="files unpack to more than 200 MiB"):
        unpack(bundle, tmp_path / "unpack")
    assert_nothing_left(tmp_path / "unpack")
    small = tar_of(run_members(valid_run(tmp_path / "b")), tmp_path / "small.tar.zst")
    with pytest.raises(BundleRefused, match="more than 0 MiB"):
        unpack(small, tmp_path / "unpack", max_bytes=100)


def test_a_huge_extended_header_is_refused_before_it_is_read_into_memory(tmp_path):
    info = tarfile.TarInfo(f"{RUN}/x")
    info.pax_headers = {"comment": "a" * (2 * 1024**2)}
    bundle = tar_of(run_members(valid_run(tmp_path)) + [(info, b"")], tmp_path / "pax.tar.zst")
    with pytest.raises(BundleRefused, match="extended tar header"):
        unpack(bundle, tmp_path / "unpack")


@pytest.mark.parametrize("junk", [b"", b"not zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 40])
def test_what_is_no_archive_is_refused(junk, tmp_path):
    path = tmp_path / "junk.tar.zst"
    path.write_bytes(junk)
    with pytest.raises(BundleRefused, match="refused as a cmlab bundle"):
        unpack(path, tmp_path / "unpack")
    assert_nothing_left(tmp_path / "unpack")


def test_a_valid_bundle_unpacks_privately_with_modes_of_its_own(tmp_path):
    run = valid_run(tmp_path)
    os.chmod(run / "run.json", 0o4777)
    out = unpack(pack_dir(run, tmp_path / "b.tar.zst"), tmp_path / "u")
    assert out.name == RUN and json.loads((out / "run.json").read_text())["seed"] == 5
    assert (out.parent.stat().st_mode & 0o777) == 0o700
    assert (out / "run.json").stat().st_mode & 0o7777 == 0o600


def test_pack_leaves_links_out_of_a_bundle(tmp_path):
    run = valid_run(tmp_path)
    (run / "link").symlink_to("/etc/passwd")
    (run / "lab" / "plan.json").touch()
    out = unpack(pack(run, tmp_path / "b.tar.zst"), tmp_path / "u")
    assert not (out / "link").exists()


# ---- files of a bundle: read as hostile input (the review reads them; no Docker needed) ----

RUN_JSON_LIES = {
    "not-json": b"{",
    "not-utf8": b"\xff\xfe{}",
    "deep": b"[" * 100000 + b"]" * 100000,
    "seed-huge": json.dumps({"scenario": "vip-removed", "seed": 10**30}).encode(),
    "seed-text": json.dumps({"scenario": "vip-removed", "seed": "x; rm -rf /"}).encode(),
    "trials-zero": json.dumps({"scenario": "vip-removed", "seed": 1, "trials": 0}).encode(),
    "cadence-zero": json.dumps({"scenario": "vip-removed", "seed": 1, "cadence_s": [0, 0.02, 0.2]}).encode(),
    "scenario-path": json.dumps({"scenario": "../../etc/passwd", "seed": 1}).encode(),
}


@pytest.mark.parametrize("lie", sorted(RUN_JSON_LIES))
def test_a_lying_run_record_is_refused_in_one_line(lie, tmp_path):
    run = valid_run(tmp_path)
    (run / "run.json").write_bytes(RUN_JSON_LIES[lie])
    with pytest.raises(BundleRefused) as caught:
        replay_mod.unpack_bundle(pack_dir(run, tmp_path / "b.tar.zst"), tmp_path / "u")
    print(f"\n{lie}: {caught.value}")
    assert "\n" not in str(caught.value) and "run's record" in str(caught.value)
    assert_nothing_left(tmp_path / "u")


@pytest.mark.parametrize("name,text,words", [
    ("scenario-bad-duration", "summary: x\nschedule:\n  - fault: crash\n    target: primary\n  - sleep: 1e308 * 10\n", "finite"),
    ("scenario-nul", "summary: x\x00\n", "unacceptable character"),
    ("scenario-deep", "summary: " + "[" * 500 + "]" * 500 + "\n", "nesting deeper"),
])
def test_a_hostile_scenario_in_a_bundle_is_refused_with_its_place(name, text, words, tmp_path):
    run = valid_run(tmp_path)
    (run / "scenario.yaml").write_text(text)
    with pytest.raises(CmlabError, match=words) as caught:
        replay_mod.unpack_bundle(pack_dir(run, tmp_path / "b.tar.zst"), tmp_path / "u")
    assert "scenario.yaml:" in str(caught.value)
    assert_nothing_left(tmp_path / "u")


# ---- the review: what a replay would create and use (Docker read, nothing created) ----

def _review(tmp_path: Path, run: Path, **kwargs):
    return api.review_replay(pack_dir(run, tmp_path / "b.tar.zst"), **kwargs)


def _topology(example: str) -> dict:
    return yaml.safe_load((Path(__file__).resolve().parents[2] / "topologies" / f"{example}.yaml").read_text())


def test_host_paths_in_a_bundle_must_be_given_again(docker_client, tmp_path, results, marker):
    run = valid_run(tmp_path, _topology("opengauss-1az"))
    given = {"package": "/etc/shadow", "om_package": "/dev/zero", "base_image": "cmlab/base:evil"}
    plan = json.loads((run / "lab" / "plan.json").read_text())
    plan["parameters"].update(given)
    (run / "lab" / "plan.json").write_text(json.dumps(plan))
    topo = yaml.safe_load((run / "lab" / "topology.yaml").read_text())
    topo["parameters"].update(given)
    (run / "lab" / "topology.yaml").write_text(yaml.safe_dump(topo))
    review = _review(tmp_path, run)
    refusals = "\n".join(review.refusals)
    for key, value in (("package", "/etc/shadow"), ("om_package", "/dev/zero"), ("base_image", "cmlab/base:evil")):
        assert f"parameters.{key} names '{value}'" in refusals and f"--set {key}=" in refusals
    assert review.lab is not None and review.lab.plan.parameters["package"] is None
    with pytest.raises(CmlabError, match="refused"):
        api.run_replay(review)
    review.discard()
    assert_nothing_left(results / "replay")


def test_a_bundle_across_hosts_contacts_no_host_without_allow_hosts(docker_client, tmp_path, results):
    topo = _topology("quickstart-across-hosts")
    topo["hosts"] = [{**h, "endpoint": f"tcp://192.0.2.{i}:2375", "address": f"192.0.2.{i}"}
                     for i, h in enumerate(topo["hosts"], start=1)]
    review = _review(tmp_path, valid_run(tmp_path, topo))
    assert review.lab is None and any("--allow-hosts" in r and "192.0.2.1" in r for r in review.refusals)
    assert any("remote Docker host" in line for line in review.lines())
    review.discard()


@pytest.mark.parametrize("setting", ["archive_command", "restore_command", "shared_preload_libraries"])
def test_a_command_running_parameter_needs_trust(setting, docker_client, tmp_path, results, marker):
    topo = _topology("quickstart")
    topo["parameters"] = {"postgresql": {setting: f"touch {marker}"}}
    review = _review(tmp_path, valid_run(tmp_path, topo))
    assert any("--trust-commands" in r and f"postgresql.{setting}" in r for r in review.refusals)
    assert any(f"runs commands: postgresql.{setting}" in line for line in review.lines())
    review.discard()
    trusted = _review(tmp_path, valid_run(tmp_path / "t", topo), trust_commands=True)
    assert trusted.refusals == []
    trusted.discard()


def test_a_plan_that_is_not_what_the_topology_says_is_refused(docker_client, tmp_path, results):
    run = valid_run(tmp_path)
    plan = json.loads((run / "lab" / "plan.json").read_text())
    plan["parameters"]["ttl"] = 3
    (run / "lab" / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(BundleRefused, match="describe different labs"):
        _review(tmp_path, run)
    assert_nothing_left(results / "replay")


def test_a_replay_takes_a_name_and_subnets_of_its_own_and_says_so(docker_client, tmp_path, results, monkeypatch):
    run = valid_run(tmp_path, name="taken")
    subnet = json.loads((run / "lab" / "plan.json").read_text())["azs"][0]["subnet"]
    monkeypatch.setattr(api, "labs", lambda client=None: ["taken", "taken-r1"])
    monkeypatch.setattr(DockerRuntime, "used_subnets", lambda self, exclude_lab=None: [IPv4Network(subnet)])
    review = _review(tmp_path, run)
    assert review.plan.name == "taken-r2" and str(review.plan.azs[0].subnet) != subnet
    assert any("not the bundle's 'taken'" in n for n in review.notes) and any("subnets allocated here" in n for n in review.notes)
    review.discard()
    with pytest.raises(CmlabError, match="a lab named 'taken' exists here"):
        _review(tmp_path, valid_run(tmp_path / "again", name="taken"), name="taken")
    assert_nothing_left(results / "replay")


def test_replay_at_the_command_line_creates_nothing_without_yes(docker_client, tmp_path, results):
    from click.testing import CliRunner

    from cmlab.cli import main

    bundle = pack_dir(valid_run(tmp_path), tmp_path / "b.tar.zst")
    result = CliRunner().invoke(main, ["replay", str(bundle)], input="")
    assert result.exit_code == 1, result.output
    assert "lab to create: 'hostile'" in result.output and "scenario: vip-removed" in result.output
    assert "nothing was created" in result.output and "Traceback" not in result.output
    assert "hostile" not in api.labs()
    assert_nothing_left(results / "replay")


# ---- images: a bundle never re-points a tag of this host ----

def _tiny_image(client, tag: str) -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    repo, version = tag.split(":")
    client.api.import_image_from_data(raw.getvalue(), repository=repo, tag=version)
    return client.images.get(tag).id


def test_a_bundles_images_load_under_the_replays_own_tag_and_no_tag_here_moves(docker_client, tmp_path):
    victim = "cmlab-hostile/victim:1"
    before = _tiny_image(docker_client, victim)
    evil = _tiny_image(docker_client, "cmlab-hostile/evil:1")
    saved = tmp_path / "images.tar"
    with open(saved, "wb") as f:
        for chunk in docker_client.images.get("cmlab-hostile/evil:1").save(named=True):
            f.write(chunk)
    # The bundle's archive claims the victim's tag for its own image.
    forged = tmp_path / "forged.tar"
    with tarfile.open(saved) as src, tarfile.open(forged, "w") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == "manifest.json":
                doc = json.loads(data)
                doc[0]["RepoTags"] = [victim]
                data = json.dumps(doc).encode()
                m.size = len(data)
            if m.name == "repositories":
                data = json.dumps({"cmlab-hostile/victim": {"1": evil.removeprefix("sha256:")}}).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    docker_client.images.remove("cmlab-hostile/evil:1")
    try:
        images = replay_mod.archive_images(forged)
        assert images[0]["id"] == evil and images[0]["tags"] == [victim]
        run_dir = tmp_path / "bundle" / RUN
        run_dir.mkdir(parents=True)
        shutil.copy(forged, run_dir / "images.tar")
        review = SimpleNamespace(run_dir=run_dir, images=images)
        lab = SimpleNamespace(client=docker_client, plan=SimpleNamespace(name="hostile-img"))
        tags = replay_mod.load_images(lab, review)
        assert docker_client.images.get(victim).id == before, "the bundle re-pointed a tag of this host"
        assert tags == {evil: image_tags.replay_tag("hostile-img", evil)}
        assert docker_client.images.get(tags[evil]).id == evil
        assert image_tags.remove_replay_tags(docker_client, "hostile-img") == 1
    finally:
        for tag in (victim, image_tags.replay_tag("hostile-img", evil)):
            try:
                docker_client.images.remove(tag, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
