"""Output that survives a log: piped (no terminal), no colour codes and no
line cut in pieces, one fact a line."""

from __future__ import annotations

import os
import subprocess
import sys

from cmlab.scenarios import SCENARIOS


def piped(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    return subprocess.run([sys.executable, "-m", "cmlab.cli", *args], capture_output=True, text=True, timeout=60, env=env)


def test_a_piped_listing_is_one_line_a_scenario_without_colour_codes():
    result = piped("scenarios", "--for", "quickstart")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(SCENARIOS) and all(ln.split()[0] in SCENARIOS for ln in lines), result.stdout
    assert "\x1b[" not in result.stdout


def test_a_piped_error_keeps_its_path_whole():
    path = "/tmp/" + "a-rather-long-directory-name-" * 4 + "/topology.yaml"
    result = piped("validate", path)
    assert result.returncode != 0 and path in result.stdout + result.stderr
    assert "\x1b[" not in result.stdout + result.stderr


def test_a_piped_table_has_one_line_a_row():
    """`cmlab doctor`'s details are long: at a terminal of 80 columns they wrap
    inside their cells; in a log each capability stays on its line."""
    from cmlab.runtime.capabilities import capabilities

    result = piped("doctor")
    assert result.returncode == 0, result.stderr
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("│")]
    assert len(rows) == len(capabilities()), result.stdout  # one line a capability
