"""Bundle archives (``.tar.zst``): written from a run directory, read back as
someone else's file.

A bundle comes from another person and is unpacked as root, so reading one
trusts nothing in it: :func:`unpack` checks every member itself before it
writes a byte (``tarfile``'s ``filter="data"`` alone let links through on
Python before 3.11.13, CVE-2025-4517):

* plain files and directories only: no symbolic or hard links, devices,
  FIFOs; names relative, without ``..``, control characters or empty parts,
  at most :data:`MAX_DEPTH` deep; a name at most once;
* at most :data:`MAX_MEMBERS` members, and a cap on the bytes unpacked that is
  enforced while the decompression streams (a zstd bomb stops at the cap, not
  at the disk's end): :data:`MAX_BYTES` for the run's files,
  :data:`MAX_IMAGE_BYTES` more for the images' ``docker save`` archive;
* files are written with mode 0600 and directories 0700 (the archive's modes
  and owners are ignored), into a fresh private directory that is removed
  when anything fails.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import zstandard

from cmlab.errors import CmlabError

#: The images' archive in a bundle made ``--with-images`` (``docker save``).
IMAGES_TAR = "images.tar"
#: Bytes a bundle's files may unpack to, the images' archive aside.
MAX_BYTES = 200 * 1024**2
#: Bytes the images' archive may unpack to.
MAX_IMAGE_BYTES = 2 * 1024**3
#: Members a bundle may hold (a run of 20 trials holds a few hundred).
MAX_MEMBERS = 20000
#: Deepest path a member may have, in parts.
MAX_DEPTH = 16
#: Largest extended header (pax, GNU long name) read, bytes: tarfile reads one whole into memory.
MAX_HEADER_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024


class BundleRefused(CmlabError):
    """A bundle breaks a rule of :func:`unpack`; nothing of it is left on disk."""


def pack(run_dir: Path, out: Path) -> Path:
    """Write ``run_dir`` as one ``.tar.zst`` file: its directories and plain
    files only (a link in a run directory is not the run's)."""
    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return info if info.isfile() or info.isdir() else None

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw:
        with zstandard.ZstdCompressor(level=10, threads=-1).stream_writer(raw) as zst:
            with tarfile.open(fileobj=zst, mode="w|") as tar:
                tar.add(run_dir, arcname=run_dir.name, filter=plain)
    return out


class _Capped(io.RawIOBase):
    """A reader that refuses to give more than ``limit`` bytes (the tar stream
    as it is decompressed: headers, padding and files)."""

    def __init__(self, inner: io.RawIOBase, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise BundleRefused(f"it unpacks to more than {self.limit / 1024**2:.0f} MiB")
        buffer[:len(data)] = data
        return len(data)


class _BoundedInfo(tarfile.TarInfo):
    """A TarInfo whose extended headers (pax, GNU long names) are refused past
    :data:`MAX_HEADER_BYTES` before tarfile reads them into memory."""

    def _proc_pax(self, tarfile):  # type: ignore[no-untyped-def,override]
        self._bounded()
        return super()._proc_pax(tarfile)

    def _proc_gnulong(self, tarfile):  # type: ignore[no-untyped-def,override]
        self._bounded()
        return super()._proc_gnulong(tarfile)

    def _bounded(self) -> None:
        if self.size > MAX_HEADER_BYTES:
            raise BundleRefused(f"an extended tar header of {self.size} bytes (at most {MAX_HEADER_BYTES})")


def member_path(name: str) -> PurePosixPath:
    """A member's name as a safe relative path.

    :raises BundleRefused: absolute, ``..``, empty parts, control characters, too deep or too long.
    """
    if not name or len(name) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BundleRefused(f"member {name!r}: an empty, over-long or unprintable name")
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p != "."]
    if path.is_absolute() or not parts or ".." in parts or any(len(p) > 255 for p in parts):
        raise BundleRefused(f"member {name!r}: names must be relative paths inside the bundle")
    if len(parts) > MAX_DEPTH:
        raise BundleRefused(f"member {name!r}: deeper than {MAX_DEPTH} levels")
    return PurePosixPath(*parts)


def unpack(bundle: Path, parent: Path, max_bytes: int | None = None) -> Path:
    """Unpack a bundle into a fresh private directory under ``parent``; returns
    the run directory in it (the one top-level directory, holding ``lab/plan.json``).

    :param max_bytes: the cap on unpacked bytes, images included (default:
        :data:`MAX_BYTES` for the files and :data:`MAX_IMAGE_BYTES` more for the images).
    :raises BundleRefused: a rule of the module doc is broken, or it is not a
        cmlab bundle (not zstd, not tar, not one run directory); the directory
        made is removed.
    """
    parent.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="bundle-", dir=parent))
    try:
        _unpack_into(bundle, dest, max_bytes)
        tops = list(dest.iterdir())
        if len(tops) != 1 or not (tops[0] / "lab" / "plan.json").is_file():
            raise BundleRefused("it holds no single run directory with lab/plan.json")
        return tops[0]
    except BundleRefused as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise BundleRefused(f"{bundle} is refused as a cmlab bundle: {exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _unpack_into(bundle: Path, dest: Path, max_bytes: int | None) -> None:
    files_cap = MAX_BYTES if max_bytes is None else max_bytes
    images_cap = MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    # Headers and padding on top of the data: a few blocks a member, and extended headers.
    stream_cap = files_cap + images_cap + MAX_MEMBERS * 4 * tarfile.BLOCKSIZE + 64 * MAX_HEADER_BYTES
    files_bytes = 0
    try:
        with open(bundle, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zst:
            capped = io.BufferedReader(_Capped(zst, stream_cap), _CHUNK)
            with tarfile.open(fileobj=capped, mode="r|", tarinfo=_BoundedInfo) as tar:
                for count, member in enumerate(tar, start=1):
                    if count > MAX_MEMBERS:
                        raise BundleRefused(f"more than {MAX_MEMBERS} members")
                    rel = member_path(member.name)
                    target = dest / rel
                    if member.isdir():
                        _directory(dest, rel)
                        continue
                    if not member.isreg():
                        raise BundleRefused(f"member {member.name!r} is a {_kind(member)}: a bundle holds plain files only")
                    images = rel.name == IMAGES_TAR and len(rel.parts) == 2
                    if images and member.size > images_cap:
                        raise BundleRefused(f"its images unpack to more than {images_cap / 1024**2:.0f} MiB")
                    if not images:
                        files_bytes += member.size
                        if files_bytes > files_cap:
                            raise BundleRefused(f"its files unpack to more than {files_cap / 1024**2:.0f} MiB")
                    _directory(dest, rel.parent)
                    _write(tar, member, target)
    except (OSError, tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise BundleRefused(f"not a zstd-compressed tar archive, or a damaged one ({exc})") from None


def _directory(dest: Path, rel: PurePosixPath) -> None:
    """Make ``dest/rel`` a directory, part by part: every part must be a
    directory this unpack made (nothing in ``dest`` is a link: none is ever made)."""
    here = dest
    for part in rel.parts:
        here = here / part
        try:
            os.mkdir(here, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                raise BundleRefused(f"{rel}: a file and a directory of the same name") from None


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise BundleRefused(f"member {member.name!r} appears twice") from None
    source = tar.extractfile(member)
    assert source is not None
    with os.fdopen(fd, "wb") as out:
        left = member.size
        while left > 0:
            chunk = source.read(min(_CHUNK, left))
            if not chunk:
                raise BundleRefused(f"member {member.name!r} is cut short")
            out.write(chunk)
            left -= len(chunk)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "special member"
