"""The user's openGauss inputs, checked before anything is built.

Accepted (../shared/reference/opengauss-cm.md §1):

* the "All" release package: a tarball holding ``openGauss-Server-*.tar.bz2``
  (older releases: ``openGauss-*-64bit.tar.bz2``), ``openGauss-CM-*.tar.gz``
  and ``openGauss-OM-*.tar.gz``, as the community image's
  ``install.sh: install_application`` unpacks them;
* separate server and CM packages (the same inner tarballs, given one by one);
* a local install tree, as openGauss and CM developers build it: a
  directory with ``bin/gaussdb``, ``bin/gs_ctl``, ``bin/cm_ctl``,
  ``bin/cm_agent``, ``bin/cm_server`` and ``bin/om_monitor``.

OM is needed in every form: the start sequence makes CM's static config with
``gs_om -t generateconf`` as the community image does (opengauss-cm.md §1
step 5). The All package holds it; with separate packages or an install tree
it is given on its own (``om_package``): OM's release tarball
``openGauss-OM-*.tar.gz``, or a directory laid out as one (``script/gs_om``).

A checksum, when given, is verified (SHA-256 of the file). Every error names
the file, what is wrong and what was expected.
"""

from __future__ import annotations

import fnmatch
import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from cmlab.errors import ImageBuildError

SERVER = ("openGauss-Server-*.tar.bz2", "openGauss-*-64bit.tar.bz2")
CM = ("openGauss-CM-*.tar.gz",)
OM = ("openGauss-OM-*.tar.gz",)
TREE_BINARIES = ("gaussdb", "gs_ctl", "cm_ctl", "cm_agent", "cm_server", "om_monitor")
OM_ENTRY = "script/gs_om"
NO_OM = ("also give the OM package (parameters.om_package: openGauss-OM-*.tar.gz, or a directory with "
         f"{OM_ENTRY}): cmlab makes CM's static config with gs_om -t generateconf")


@dataclass(frozen=True)
class OpenGaussInputs:
    """What the image will be built from.

    :param kind: ``all``, ``separate`` or ``tree``.
    :param paths: the package (all), the server and CM packages (separate),
        or the install tree (tree).
    :param members: for packages, the inner tarball names found (server, cm, om).
    :param digest: SHA-256 of every input file, for the image's content-hash
        tag ("" for directories: the builder hashes their contents).
    :param om: OM given on its own (a tarball or a directory); None in the All package.
    """

    kind: str
    paths: tuple[Path, ...]
    members: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    om: Path | None = None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _match(name: str, patterns: tuple[str, ...]) -> bool:
    base = name.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(base, p) for p in patterns)


def _verify(path: Path, sha256: str | None) -> str:
    if not path.exists():
        raise ImageBuildError(f"{path}: no such file or directory (the openGauss package or install tree)")
    if path.is_dir():
        return ""
    if not path.is_file():  # a device (/dev/zero) would be read for ever, a FIFO would block
        raise ImageBuildError(f"{path}: not a regular file or a directory (the openGauss package or install tree)")
    actual = sha256_of(path)
    if sha256 and actual != sha256.lower():
        raise ImageBuildError(f"{path}: SHA-256 is {actual}, expected {sha256.lower()}: the file is not the package you named")
    return actual


def _tar_members(path: Path) -> list[str]:
    try:
        with tarfile.open(path) as tar:
            return tar.getnames()
    except (tarfile.TarError, OSError) as exc:
        raise ImageBuildError(f"{path}: not a readable tarball ({exc})") from None


def _om(om_package: Path | None, om_sha256: str | None, what: str) -> tuple[Path, str]:
    """The OM given on its own, checked: ``(path, SHA-256 or "" for a directory)``."""
    if om_package is None:
        raise ImageBuildError(f"{what} holds no OM: {NO_OM}")
    digest = _verify(om_package, om_sha256)
    if om_package.is_dir():
        if not (om_package / OM_ENTRY).is_file():
            raise ImageBuildError(f"{om_package}: an OM directory needs {OM_ENTRY} (the layout of openGauss-OM-*.tar.gz)")
    elif not _match(om_package.name, OM) and not any(n.endswith(OM_ENTRY) for n in _tar_members(om_package)):
        raise ImageBuildError(f"{om_package}: not an OM package (no {OM_ENTRY} inside)")
    return om_package, digest


def inspect(package: Path | None = None, cm_package: Path | None = None, sha256: str | None = None,
            cm_sha256: str | None = None, om_package: Path | None = None, om_sha256: str | None = None) -> OpenGaussInputs:
    """Check the inputs and say what they are.

    :param package: the All package, the server package, or an install tree.
    :param cm_package: the CM package, when the server package comes alone.
    :param om_package: OM, with a server package or an install tree.
    :raises ImageBuildError: missing, checksum mismatch, no OM, or a layout
        that is none of the accepted ones (the message lists what was found).
    """
    if package is None:
        raise ImageBuildError("no openGauss package given: set parameters.package in the topology or "
                              "CMLAB_OPENGAUSS_PACKAGE to the All package, the server package or an install tree")
    digest = _verify(package, sha256)
    if package.is_dir():
        missing = [b for b in TREE_BINARIES if not (package / "bin" / b).is_file()]
        if missing:
            raise ImageBuildError(f"{package}: an install tree needs bin/{', bin/'.join(missing)} "
                                  "(GAUSSHOME of a server build with CM installed into it)")
        om, om_digest = _om(om_package, om_sha256, f"{package} (an install tree)")
        return OpenGaussInputs("tree", (package,), digest=om_digest, om=om)
    names = _tar_members(package)
    server = next((n for n in names if _match(n, SERVER)), None)
    cm = next((n for n in names if _match(n, CM)), None)
    om = next((n for n in names if _match(n, OM)), None)
    if server and cm:
        if om is None:
            if om_package is None:
                raise ImageBuildError(f"{package}: the All package holds no openGauss-OM-*.tar.gz: {NO_OM}")
            om_path, om_digest = _om(om_package, om_sha256, str(package))
            return OpenGaussInputs("all", (package,), {"server": server, "cm": cm}, _combined(digest, om_digest), om_path)
        return OpenGaussInputs("all", (package,), {"server": server, "cm": cm, "om": om}, digest)
    if _match(package.name, SERVER) or any(n.rsplit("/", 1)[-1] == "gaussdb" for n in names):
        if cm_package is None:
            raise ImageBuildError(f"{package}: a server package without CM: also give the CM package "
                                  "(parameters.cm_package, openGauss-CM-*.tar.gz)")
        cm_digest = _verify(cm_package, cm_sha256)
        if not _match(cm_package.name, CM) and not any(n.rsplit("/", 1)[-1] == "cm_ctl" for n in _tar_members(cm_package)):
            raise ImageBuildError(f"{cm_package}: not a CM package (no bin/cm_ctl inside)")
        om_path, om_digest = _om(om_package, om_sha256, "a server package")
        return OpenGaussInputs("separate", (package, cm_package), {"server": package.name, "cm": cm_package.name},
                               _combined(digest, cm_digest, om_digest), om_path)
    shown = ", ".join(n for n in names[:8]) + (" ..." if len(names) > 8 else "")
    raise ImageBuildError(f"{package}: not an openGauss package: expected inner openGauss-Server-*.tar.bz2 and "
                          f"openGauss-CM-*.tar.gz (the All package) or a server package; found: {shown or 'nothing'}")


def _combined(*digests: str) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()
