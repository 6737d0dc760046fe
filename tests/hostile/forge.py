"""Forging hostile bundles: a valid bundle to start from, and the tricks a
hostile colleague would pack into one (links, devices, escapes, bombs, lies).

Every trick that would write outside the unpack directory aims at a marker
path under the test's own temporary directory, so a test asserts the marker
never appears.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
import zstandard

from cmlab.engines.registry import default_registry
from cmlab.topology import load

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261207T000000Z-vip-removed"


def valid_run(tmp_path: Path, topology: dict[str, Any] | None = None, name: str = "hostile") -> Path:
    """A run directory a replay accepts (no trial was run: its histories are not read)."""
    data = topology or yaml.safe_load((ROOT / "topologies" / "quickstart.yaml").read_text())
    data = {**data, "name": name}
    for az in data["azs"]:
        az.pop("subnet", None)
    for item in data.get("nodes", []) + data.get("vips", []):
        item.pop("address", None)
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "src.yaml"
    src.write_text(yaml.safe_dump(data))
    plan = load(src, default_registry())
    run = tmp_path / "made" / RUN
    (run / "lab").mkdir(parents=True)
    (run / "lab" / "plan.json").write_text(plan.to_json())
    (run / "lab" / "topology.yaml").write_text(yaml.safe_dump(plan.to_topology(), sort_keys=False))
    (run / "lab" / "images.json").write_text(json.dumps(
        [{"container": n.container, "tag": "cmlab/postgres-patroni:000000000000", "id": "sha256:" + "0" * 64}
         for n in plan.nodes]))
    (run / "scenario.yaml").write_text((ROOT / "scenarios" / "vip-removed.yaml").read_text())
    (run / "run.json").write_text(json.dumps({"scenario": "vip-removed", "seed": 5, "trials": 1,
                                              "cadence_s": [0.02, 0.02, 0.2]}))
    (run / "report.json").write_text(json.dumps({"trials": [{"trial": 1, "verdicts": {"no_lost_writes": True},
                                                             "client_rto_s": 3.0}]}))
    return run


def pack_dir(run: Path, out: Path) -> Path:
    """The run directory as a bundle, written with tarfile (links kept as links: the tests' own packer)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(run, arcname=run.name)
    out.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return out


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]], out: Path, compress: bool = True) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()) if compress else raw.getvalue())
    return out


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    return _special(name, tarfile.DIRTYPE)


def run_members(run: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of a valid run directory, to mix tricks into."""
    out: list[tuple[tarfile.TarInfo, bytes | None]] = [_dir(RUN)]
    for path in sorted(run.rglob("*")):
        name = f"{RUN}/{path.relative_to(run)}"
        out.append(_dir(name) if path.is_dir() else _file(name, path.read_bytes()))
    return out


def zstd_bomb(out: Path, gib: float = 4.0) -> Path:
    """A small file that decompresses to ``gib`` GiB: a tar member of zeros, streamed."""
    size = int(gib * 1024**3)
    info = tarfile.TarInfo(f"{RUN}/zeros")
    info.size = size
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    zero = bytes(1024 * 1024)
    with open(out, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as zst:
        zst.write(_dir(RUN)[0].tobuf(format=tarfile.PAX_FORMAT))
        zst.write(header)
        for _ in range(size // len(zero)):
            zst.write(zero)
    return out


#: Tar tricks: name -> (members given a valid run's members and a marker path, the refusal's words).
TAR_TRICKS: dict[str, tuple[Callable[[list, Path], list], str]] = {
    "symlink-out": (lambda m, mark: m + [_special(f"{RUN}/evil", tarfile.SYMTYPE, str(mark))], "symbolic link"),
    "symlink-then-write": (lambda m, mark: m + [_special(f"{RUN}/d", tarfile.SYMTYPE, str(mark.parent)),
                                                _file(f"{RUN}/d/{mark.name}")], "symbolic link"),
    "hardlink": (lambda m, mark: m + [_special(f"{RUN}/h", tarfile.LNKTYPE, "/etc/passwd")], "hard link"),
    "absolute": (lambda m, mark: m + [_file(str(mark))], "relative"),
    "dot-dot": (lambda m, mark: m + [_file(f"{RUN}/../../{mark.name}")], "relative"),
    "device": (lambda m, mark: m + [_special(f"{RUN}/zero", tarfile.CHRTYPE)], "device"),
    "fifo": (lambda m, mark: m + [_special(f"{RUN}/pipe", tarfile.FIFOTYPE)], "FIFO"),
    "twice": (lambda m, mark: m + [_file(f"{RUN}/run.json", b"{}")], "twice"),
    "file-over-dir": (lambda m, mark: m + [_file(f"{RUN}/x"), _file(f"{RUN}/x/y")], "same name"),
    "control-char": (lambda m, mark: m + [_file(f"{RUN}/a\nb")], "unprintable"),
    "too-deep": (lambda m, mark: m + [_file(f"{RUN}/" + "d/" * 20 + "f")], "deeper"),
    "two-runs": (lambda m, mark: m + [_dir("other"), _file("other/x")], "single run directory"),
    "many-members": (lambda m, mark: m + [_file(f"{RUN}/f{i}") for i in range(20001)], "members"),
}
