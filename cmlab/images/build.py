"""Build the images a lab needs, offline from any image registry.

* ``cmlab/base:<hash>``: Debian minbase bootstrapped by ``mmdebstrap`` from
  the host's Debian mirror and imported with ``docker import``.
* ``cmlab/<engine>:<hash>``: the engine's recipe (``images/<engine>/``) built
  ``FROM`` the base.

Each tag is a content hash of the image's inputs (recipe files, APT sources,
base tag), so a build with nothing changed finds its image and returns at
once. Every image lists its package versions in ``/etc/cmlab/packages.txt``.
Builds hold a file lock, so parallel test workers build once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from cmlab.engines.base import BuildInputs, ImageRecipe
from cmlab.errors import ImageBuildError
from cmlab.images import debian
from cmlab.progress import Progress, Quiet

if TYPE_CHECKING:  # the SDK costs a third of a second to import; engines read folder_digest without it
    import docker

#: Bump when the way images are built changes, to invalidate every tag.
RECIPE_FORMAT = "1"
#: Longest time an image build may take, seconds.
BUILD_TIMEOUT_S = 1800
LABEL = "cmlab.image"
#: mmdebstrap's options for the base, part of its tag (a change is a new base).
#: The dpkg options stay in the image (``/etc/dpkg/dpkg.cfg.d``), so they hold
#: for the engine images' installs too.
BOOTSTRAP_OPTIONS = (
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    # No fsync per unpacked file: an image is rebuilt, never repaired (Docker's
    # own Debian images do the same); on fuse-overlayfs each fsync is costly.
    "--dpkgopt=force-unsafe-io",
    # No init system in a container: package scripts must not start services.
    "--customize-hook=printf '#!/bin/sh\\nexit 101\\n' > \"$1/usr/sbin/policy-rc.d\"; chmod 755 \"$1/usr/sbin/policy-rc.d\"",
    "--customize-hook=mkdir -p \"$1/etc/cmlab\"",
)
#: The helper image's recipe (see :meth:`ImageBuilder.helper`).
HELPER = ImageRecipe(name="helper", folder="helper")


def images_dir() -> Path:
    """The folder of image recipes, ``cmlab/images/recipes`` (``CMLAB_IMAGES_DIR`` overrides)."""
    override = os.environ.get("CMLAB_IMAGES_DIR")
    if override:
        return Path(override)
    from cmlab.resources import package_dir
    return package_dir("images", "recipes")


def _docker_errors():  # noqa: ANN202 - the module docker.errors, imported when first needed
    import docker.errors

    return docker.errors


def folder_digest(folder: Path) -> str:
    """SHA-256 of every file's relative path, mode and content under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join((RECIPE_FORMAT, *parts)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    #: True when the image was already there (nothing was built).
    cached: bool


class ImageBuilder:
    """Builds (or finds) the base and engine images.

    :param client: a Docker client (:func:`cmlab.runtime.client.connect`).
    :param progress: where to report steps and, when verbose, build output.
    """

    def __init__(self, client: docker.DockerClient, progress: Progress | None = None) -> None:
        self.client = client
        self.progress = progress or Quiet()
        self.root = images_dir()
        lock_dir = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
        self._lock = FileLock(str(lock_dir / "cmlab-image-build.lock"), timeout=BUILD_TIMEOUT_S)

    def base_tag(self) -> str:
        given = os.environ.get("CMLAB_BASE_IMAGE", "").strip()
        if given:
            return given
        base = self.root / "base"
        return f"cmlab/base:{_hash(folder_digest(base), debian.SUITE, *debian.sources(), *BOOTSTRAP_OPTIONS)}"

    def engine_tag(self, recipe: ImageRecipe, inputs: BuildInputs | None = None) -> str:
        inputs = inputs or BuildInputs()
        extra = (inputs.digest, json.dumps(inputs.args, sort_keys=True)) if inputs.files or inputs.args else ()
        if inputs.base_image:
            extra += (inputs.base_image, self._image_id(inputs.base_image))  # a new image under the same name: a new build
        return f"cmlab/{recipe.name}:{_hash(self.base_tag(), folder_digest(self.root / recipe.folder), *extra)}"

    def _image_id(self, tag: str) -> str:
        try:
            return str(self.client.images.get(tag).id)
        except _docker_errors().ImageNotFound:
            return "absent"

    def users_base(self, tag: str) -> str:
        """An engine's base image of the user's (``BuildInputs.base_image``): it
        must be here; cmlab assumes no registry and pulls nothing.

        :raises ImageBuildError: it is not here, saying how to get it here.
        """
        if not self._exists(tag):
            raise ImageBuildError(f"base_image {tag} is not on this Docker engine; `docker pull {tag}` where a registry "
                                  "is reachable, or `docker load -i <file>` of an image saved elsewhere, then build again")
        return tag

    def _exists(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except _docker_errors().ImageNotFound:
            return False

    def base(self) -> BuiltImage:
        """The Debian base image, bootstrapped if missing.

        ``CMLAB_BASE_IMAGE`` names an image to use instead (for users who have a
        registry, or a base of their own); it must be Debian 12 and hold what
        ``images/base/include.txt`` lists plus ``/usr/local/bin/cmlab-init``.

        :raises ImageBuildError: mmdebstrap is missing or fails, the import
            fails, or ``CMLAB_BASE_IMAGE`` can be neither found nor pulled.
        """
        given = os.environ.get("CMLAB_BASE_IMAGE", "").strip()
        if given:
            return self._given_base(given)
        tag = self.base_tag()
        if self._exists(tag):
            return BuiltImage(tag, cached=True)
        with self._lock:
            if self._exists(tag):
                return BuiltImage(tag, cached=True)
            with self.progress.step(f"bootstrapping {tag} from Debian {debian.SUITE} (mmdebstrap)"):
                self._bootstrap(tag)
        return BuiltImage(tag, cached=False)

    def _given_base(self, tag: str) -> BuiltImage:
        if self._exists(tag):
            return BuiltImage(tag, cached=True)
        with self.progress.step(f"pulling {tag} (CMLAB_BASE_IMAGE)"):
            try:
                self.client.images.pull(tag)
            except _docker_errors().APIError as exc:
                raise ImageBuildError(f"CMLAB_BASE_IMAGE={tag}: not here and cannot be pulled ({exc.explanation}); "
                                      "unset it to bootstrap the base from Debian's packages") from None
        return BuiltImage(tag, cached=False)

    def _bootstrap(self, tag: str) -> None:
        if shutil.which("mmdebstrap") is None:
            raise ImageBuildError("mmdebstrap is not installed: apt-get install mmdebstrap (or run ci/setup.sh)")
        base = self.root / "base"
        include = [ln.strip() for ln in (base / "include.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        with tempfile.TemporaryDirectory(prefix="cmlab-base-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            argv = [
                "mmdebstrap", "--variant=minbase", "--mode=auto", "--format=tar",
                f"--include={','.join(include)}", *BOOTSTRAP_OPTIONS,
                f"--customize-hook=copy-in {base / 'cmlab-init'} /usr/local/bin",
                "--customize-hook=chroot \"$1\" dpkg-query -W -f '${Package}=${Version}\\n' > \"$1/etc/cmlab/packages.txt\"",
                debian.SUITE, str(tar), *debian.sources(),
            ]
            self._run(argv)
            self.progress.detail(f"docker import {tar} {tag}")
            repo, _, version = tag.partition(":")
            try:
                self.client.api.import_image_from_file(
                    str(tar), repository=repo, tag=version,
                    changes=[f"LABEL {LABEL}=base", 'CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"],
                )
            except _docker_errors().APIError as exc:
                raise ImageBuildError(f"docker import of the base image failed: {exc}") from None

    def _run(self, argv: list[str]) -> None:
        self.progress.detail("$ " + " ".join(argv))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            self.progress.detail(line.rstrip())
            tail = (tail + [line.rstrip()])[-30:]
        if proc.wait(timeout=BUILD_TIMEOUT_S) != 0:
            raise ImageBuildError(f"{argv[0]} failed (exit {proc.returncode}); last lines:\n" + "\n".join(tail))

    def engine(self, recipe: ImageRecipe, inputs: BuildInputs | None = None) -> BuiltImage:
        """The engine's image (building the base first if needed).

        :param inputs: files the engine adds to the build context (the user's packages).
        :raises ImageBuildError: the recipe is missing or its build fails; the
            message holds the last lines of the build output.
        """
        inputs = inputs or BuildInputs()
        tag = self.engine_tag(recipe, inputs)
        if self._exists(tag):
            return BuiltImage(tag, cached=True)
        cmlab_base = self.base().tag
        base = self.users_base(inputs.base_image) if inputs.base_image else cmlab_base
        with self._lock:
            if self._exists(tag):
                return BuiltImage(tag, cached=True)
            folder = self.root / recipe.folder
            if not (folder / "Dockerfile").is_file():
                note = (folder / "README.md").read_text().strip() if (folder / "README.md").is_file() else ""
                raise ImageBuildError(f"engine image '{recipe.name}' has no recipe yet (no {folder}/Dockerfile)" + (f": {note}" if note else ""))
            with self.progress.step(f"building {tag}"), tempfile.TemporaryDirectory(prefix="cmlab-build-") as tmp:
                context = Path(tmp) / "context"
                shutil.copytree(folder, context)
                # One LABEL line: the legacy builder makes each label given to the
                # API a step of its own, and a step costs seconds on fuse-overlayfs.
                with (context / "Dockerfile").open("a") as dockerfile:
                    dockerfile.write(f"\nLABEL {LABEL}={json.dumps(recipe.name)} cmlab.base={json.dumps(base)}\n")
                for name, source in inputs.files.items():
                    target = context / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if source.is_dir():
                        shutil.copytree(source, target, symlinks=True)
                    else:
                        shutil.copy2(source, target)
                tail: list[str] = []
                stream = self.client.api.build(
                    path=str(context), tag=tag, buildargs={"BASE_IMAGE": base, "CMLAB_BASE": cmlab_base, **inputs.args},
                    # Host networking: the build's apt-get reaches the same mirror as the host.
                    network_mode="host", rm=True, forcerm=True, decode=True,
                    timeout=BUILD_TIMEOUT_S,
                )
                for chunk in stream:
                    if "error" in chunk:
                        raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}\nlast lines:\n" + "\n".join(tail))
                    for line in str(chunk.get("stream", "")).splitlines():
                        if line.strip():
                            self.progress.detail(line)
                            tail = (tail + [line])[-30:]
        return BuiltImage(tag, cached=False)

    def router(self) -> BuiltImage:
        """The AZ router runs the base image (it needs only the kernel's forwarding)."""
        return self.base()

    def helper(self) -> BuiltImage:
        """The base plus nftables (``images/helper``): labs across hosts run it
        as each AZ's access container and as each host's fault helper."""
        return self.engine(HELPER)
