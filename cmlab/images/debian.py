"""Where Debian's packages come from: the host's own APT sources.

cmlab needs no image registry: the base image is bootstrapped from Debian's
packages. It uses the mirror the host already uses for the same suite (so an
air-gapped CI with a local mirror works as it is), or ``CMLAB_DEBIAN_MIRROR``
(a URI such as ``http://mirror.example/debian``) when set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cmlab.errors import ImageBuildError

#: The Debian release every image is built from (the engines' package
#: versions are those of this suite).
SUITE = "bookworm"
APT_DIR = Path("/etc/apt")


def _deb822_entries(text: str) -> list[tuple[str, str, str]]:
    """``(uri, suite, components)`` of each ``Types: deb`` stanza."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append((uri, suite, fields.get("components", "")))
    return out


def _one_line_entries(text: str) -> list[tuple[str, str, str]]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        line = re.sub(r"\[[^]]*\]", "", line)  # drop [signed-by=...] options
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            out.append((parts[1], parts[2], " ".join(parts[3:])))
    return out


def host_sources(suite: str = SUITE, apt_dir: Path = APT_DIR) -> list[str]:
    """The host's APT source lines for ``suite`` and its updates and security
    suites, as ``deb <uri> <suite> main`` lines, in a stable order."""
    entries: list[tuple[str, str, str]] = []
    single = apt_dir / "sources.list"
    if single.is_file():
        entries += _one_line_entries(single.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.suffix == ".sources":
                entries += _deb822_entries(f.read_text(errors="replace"))
            elif f.suffix == ".list":
                entries += _one_line_entries(f.read_text(errors="replace"))
    lines = []
    for uri, s, components in entries:
        if (s == suite or s.startswith(suite + "-")) and "main" in components.split():
            line = f"deb {uri} {s} main"
            if line not in lines:
                lines.append(line)
    return lines


def sources(suite: str = SUITE) -> list[str]:
    """APT source lines for the image bootstrap.

    :raises ImageBuildError: neither ``CMLAB_DEBIAN_MIRROR`` nor the host's
        APT sources name a mirror for ``suite``.
    """
    mirror = os.environ.get("CMLAB_DEBIAN_MIRROR", "").strip()
    if mirror:
        return [f"deb {mirror} {suite} main"]
    lines = host_sources(suite)
    if not lines:
        raise ImageBuildError(
            f"no Debian mirror for '{suite}' in this host's APT sources ({APT_DIR}); "
            "set CMLAB_DEBIAN_MIRROR to a Debian mirror URI (e.g. http://<mirror>/debian)"
        )
    return lines
