"""Finding the host's Debian mirror for the image bootstrap."""

from __future__ import annotations

import pytest

from cmlab.errors import ImageBuildError
from cmlab.images import debian


def test_deb822_and_one_line_sources_are_read_for_the_suite_family(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://mirror.test/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\nComponents: main contrib\n")
    (tmp_path / "sources.list.d" / "other.list").write_text(
        "deb [arch=amd64 signed-by=/k.gpg] http://vendor.test/apt stable main\n")
    (tmp_path / "sources.list").write_text("# deb http://old.test/debian bookworm main\ndeb http://mirror.test/debian trixie main\n")
    assert debian.host_sources("bookworm", tmp_path) == [
        "deb http://mirror.test/debian bookworm main",
        "deb http://mirror.test/debian bookworm-updates main",
        "deb http://mirror.test/debian-security bookworm-security main",
    ]


def test_the_environment_overrides_the_host(monkeypatch):
    monkeypatch.setenv("CMLAB_DEBIAN_MIRROR", "http://local.test/debian")
    assert debian.sources() == ["deb http://local.test/debian bookworm main"]


def test_no_mirror_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CMLAB_DEBIAN_MIRROR", raising=False)
    monkeypatch.setattr(debian, "host_sources", lambda suite: [])
    with pytest.raises(ImageBuildError, match="CMLAB_DEBIAN_MIRROR"):
        debian.sources()
