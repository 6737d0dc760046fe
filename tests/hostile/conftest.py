"""Fixtures of the hostile corpus: a marker path that a trick aims at, results of its own (Docker: tests/conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest



@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A path a hostile input tries to create; the test asserts it never exists."""
    return tmp_path / "outside" / f"cmlab-hostile-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def results(tmp_path: Path, monkeypatch) -> Path:
    """Results (and so unpacked replays) under the test's own directory."""
    path = tmp_path / "results"
    monkeypatch.setenv("CMLAB_RESULTS_DIR", str(path))
    return path
