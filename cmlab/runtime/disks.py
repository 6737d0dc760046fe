"""Loop-device disks: sparse files under the lab's disk folder, attached as
loop devices and passed into the containers that the topology names.

A ``block`` disk appears in each container as a device node (CM's voting and
shared disks are raw devices read and written with O_DIRECT). A
``filesystem`` disk is formatted ext4 and mounted through a Docker volume of
the ``local`` driver (labelled with the lab, so ``down`` removes it).

A loop device cannot carry a label: it is the lab's when its backing file
lies in the lab's disk folder (``$CMLAB_DISK_DIR/<lab>/``, default
``/var/lib/cmlab/disks/<lab>/``), which is how ``down`` finds and detaches it.
Needs root.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path

from cmlab.errors import LabError
from cmlab.topology.plan import DiskPlan

#: ioctls of <linux/loop.h>.
LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
LOOP_SET_CAPACITY = 0x4C07
#: Offset of lo_sizelimit in struct loop_info64 (after device, inode, rdevice, offset: 4 x u64).
_SIZELIMIT_OFFSET = 32
_LOOP_INFO64_SIZE = 232


def disk_dir(lab: str) -> Path:
    root = Path(os.environ.get("CMLAB_DISK_DIR") or "/var/lib/cmlab/disks")
    return root / lab


def backing_file(lab: str, disk: DiskPlan) -> Path:
    return disk_dir(lab) / f"{disk.name}.img"


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is missing: loop-device disks need util-linux (losetup) and e2fsprogs (mkfs.ext4)") from None
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def loop_devices(lab: str) -> dict[Path, str]:
    """Backing file -> loop device, for every loop device of the lab."""
    folder = str(disk_dir(lab)) + "/"
    out: dict[Path, str] = {}
    for line in _run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"]).splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().removesuffix(" (deleted)").startswith(folder):
            out[Path(parts[1].strip().removesuffix(" (deleted)"))] = parts[0]
    return out


def attach(lab: str, disks: tuple[DiskPlan, ...]) -> dict[str, str]:
    """Create each disk's sparse file and loop device (ext4 for filesystems).

    :returns: disk name -> loop device path.
    :raises LabError: not root, or a tool failed.
    """
    if not disks:
        return {}
    if os.geteuid() != 0:
        raise LabError("the topology has disks: loop devices need root")
    folder = disk_dir(lab)
    folder.mkdir(parents=True, exist_ok=True)
    existing = loop_devices(lab)
    out: dict[str, str] = {}
    for disk in disks:
        path = backing_file(lab, disk)
        if path in existing:
            out[disk.name] = existing[path]
            continue
        with open(path, "wb") as f:
            f.truncate(disk.size_mb * 2**20)
        device = _run(["losetup", "--find", "--show", str(path)])
        out[disk.name] = device
        if disk.kind == "filesystem":
            _run(["mkfs.ext4", "-q", "-F", "-L", disk.name[:16], device])
    return out


def detach(lab: str) -> int:
    """Detach every loop device of the lab and remove its files. Returns how
    many devices were detached; harmless when there are none."""
    if os.geteuid() != 0 or not disk_dir(lab).exists():
        return 0
    n = 0
    for _, device in loop_devices(lab).items():
        _run(["losetup", "--detach", device])
        n += 1
    shutil.rmtree(disk_dir(lab), ignore_errors=True)
    return n


def set_size_limit(device: str, size_bytes: int) -> None:
    """Limit a loop device to ``size_bytes`` (0: the whole file). I/O past the
    limit fails, as on a disk that went away; the data stays in the file."""
    fd = os.open(device, os.O_RDONLY)
    try:
        buf = bytearray(_LOOP_INFO64_SIZE)
        fcntl.ioctl(fd, LOOP_GET_STATUS64, buf)
        struct.pack_into("Q", buf, _SIZELIMIT_OFFSET, size_bytes)
        fcntl.ioctl(fd, LOOP_SET_STATUS64, bytes(buf))
        fcntl.ioctl(fd, LOOP_SET_CAPACITY, 0)
    finally:
        os.close(fd)


def size_bytes(device: str) -> int:
    """The device's current size in bytes (from sysfs, 512-byte sectors)."""
    return int(Path(f"/sys/class/block/{Path(device).name}/size").read_text()) * 512


def set_read_only(device: str, read_only: bool) -> None:
    _run(["blockdev", "--setro" if read_only else "--setrw", device])


def read_only(device: str) -> bool:
    return Path(f"/sys/class/block/{Path(device).name}/ro").read_text().strip() == "1"
