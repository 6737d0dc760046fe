"""Disk faults on the lab's loop-device disks (see :mod:`cmlab.runtime.disks`).

* ``disk-readonly``: the block device becomes read-only (``blockdev --setro``):
  every write fails (EPERM) on every node that shares it.
* ``disk-detach``: the loop device shrinks to nothing (its size limit), so
  every read and write fails as on a disk that went away; undo gives the whole
  file back, data intact.
* ``disk-fill``: a filesystem disk is filled to a percentage with one
  preallocated file (CM's storage-threshold read-only mode starts at
  ``datastorage_threshold_value_check``, 85 % by default); undo deletes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


from cmlab.errors import FaultError
from cmlab.faults.base import Fault, FaultContext
from cmlab.runtime import disks

FILLER = ".cmlab-fill"
LOOP = frozenset({"root", "loop"})


def device_of(ctx: FaultContext, name: str) -> str:
    try:
        disk = ctx.plan.disk(name)
    except KeyError as exc:
        raise FaultError(str(exc.args[0])) from None
    device = disks.loop_devices(ctx.plan.name).get(disks.backing_file(ctx.plan.name, disk))
    if device is None:
        raise FaultError(f"disk {name} has no loop device attached (is the lab up?)")
    return device


class _DeviceFault(Fault):
    """A fault that sets a state of the disk's loop device, and undoes it."""

    requires: ClassVar[frozenset[str]] = LOOP
    disk: str

    def set(self, device: str, on: bool) -> None:
        raise NotImplementedError

    def is_set(self, device: str) -> bool:
        raise NotImplementedError

    def apply(self, ctx: FaultContext) -> None:
        self.set(device_of(ctx, self.disk), True)

    def undo(self, ctx: FaultContext) -> None:
        try:
            self.set(device_of(ctx, self.disk), False)
        except FaultError:
            pass

    def observe(self, ctx: FaultContext) -> bool | None:
        return self.is_set(device_of(ctx, self.disk))


@dataclass(frozen=True)
class DiskReadOnly(_DeviceFault):
    kind: ClassVar[str] = "disk-readonly"
    disk: str

    def describe(self) -> str:
        return f"disk {self.disk} read-only"

    def set(self, device: str, on: bool) -> None:
        disks.set_read_only(device, on)

    def is_set(self, device: str) -> bool:
        return disks.read_only(device)


@dataclass(frozen=True)
class DiskDetach(_DeviceFault):
    kind: ClassVar[str] = "disk-detach"
    disk: str

    def describe(self) -> str:
        return f"disk {self.disk} detached (every I/O fails)"

    def set(self, device: str, on: bool) -> None:
        # One sector left when detached: a size limit of 0 means "the whole file" to the kernel.
        disks.set_size_limit(device, 512 if on else 0)

    def is_set(self, device: str) -> bool:
        return disks.size_bytes(device) <= 512


@dataclass(frozen=True)
class DiskFill(Fault):
    """Fill a filesystem disk until ``percent`` of it is used (as ``df`` counts)."""

    kind: ClassVar[str] = "disk-fill"
    requires: ClassVar[frozenset[str]] = LOOP
    disk: str
    percent: float

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise FaultError(f"fill percent must be in (0, 100], not {self.percent}")

    def describe(self) -> str:
        return f"disk {self.disk} filled to {self.percent:g}%"

    def _mountpoint(self, ctx: FaultContext) -> Path:
        try:
            disk = ctx.plan.disk(self.disk)
        except KeyError as exc:
            raise FaultError(str(exc.args[0])) from None
        if disk.kind != "filesystem":
            raise FaultError(f"disk {self.disk} is a raw block device: only a filesystem disk can be filled")
        import docker.errors

        from cmlab.runtime.docker import disk_volume

        try:
            volume = ctx.runtime.client.volumes.get(disk_volume(ctx.plan, self.disk))
        except docker.errors.NotFound:
            raise FaultError(f"disk {self.disk} has no volume (is the lab up?)") from None
        return Path(volume.attrs["Mountpoint"])

    def apply(self, ctx: FaultContext) -> None:
        root = self._mountpoint(ctx)
        filler = root / FILLER
        try:
            st = os.statvfs(root)
            current = filler.stat().st_blocks * 512 if filler.exists() else 0
            used = (st.f_blocks - st.f_bfree) * st.f_frsize - current
            room = used + current + st.f_bavail * st.f_frsize
            want = int(self.percent / 100 * room) - used
            with open(filler, "wb") as f:
                f.truncate(0)
                if want > 0:
                    os.posix_fallocate(f.fileno(), 0, want)
        except OSError as exc:
            raise FaultError(f"cannot fill disk {self.disk} at {root}: {exc.strerror}") from None

    def undo(self, ctx: FaultContext) -> None:
        try:
            (self._mountpoint(ctx) / FILLER).unlink(missing_ok=True)
        except (FaultError, OSError):
            pass

    def observe(self, ctx: FaultContext) -> bool | None:
        return (self._mountpoint(ctx) / FILLER).exists()


def used_percent(path: Path) -> float:
    """Used share of the filesystem at ``path`` as ``df`` reports it, in percent."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return 100 * used / (used + st.f_bavail * st.f_frsize)
