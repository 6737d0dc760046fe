"""What cmlab loads before it does anything: every command and every pytest
session on a machine with cmlab installed pays for it (issue: light labs)."""

from __future__ import annotations

import subprocess
import sys

#: Modules that cost a third of a second to a second of CPU each to import.
HEAVY = ("docker", "pyroute2", "psycopg", "matplotlib")
#: Modules a command that needs no Docker may import, and the CLI and the pytest plugin.
ENTRY_POINTS = ("cmlab.cli", "cmlab.pytest_plugin", "cmlab.api", "cmlab.scenarios", "cmlab.faults.nemesis",
                "cmlab.engines.registry")
#: Commands that need no Docker.
COMMANDS = (["--help"], ["validate", "topologies/quickstart.yaml"], ["scenarios"], ["check-scenario", "kill-primary"],
            ["schema"], ["engines"])


def loaded_after(code: str) -> list[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_importing_the_entry_points_loads_no_heavy_module():
    assert loaded_after("\n".join(f"import {m}" for m in ENTRY_POINTS)) == []


def test_commands_that_need_no_docker_load_no_heavy_module():
    runs = "\n".join(f"r = CliRunner().invoke(main, {argv!r}); assert r.exit_code == 0, r.output" for argv in COMMANDS)
    assert loaded_after(f"from click.testing import CliRunner\nfrom cmlab.cli import main\n{runs}") == []


def test_the_probe_sees_a_heavy_module_when_one_is_loaded():
    assert loaded_after("import docker") == ["docker"]
