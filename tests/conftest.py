"""Fixtures shared by the suites that need Docker (end-to-end, hostile input)."""

from __future__ import annotations

import pytest

from cmlab.errors import DockerUnavailable
from cmlab.runtime.client import connect


@pytest.fixture(scope="session")
def docker_client():
    """A Docker client; the test is skipped, saying why, where no Docker Engine answers."""
    try:
        return connect()
    except DockerUnavailable as exc:
        pytest.skip(f"no Docker Engine: {exc}")
