"""cmlab as a wheel: built from the sources, installed into a fresh venv, it
finds its scenarios, example topologies and image recipes (importlib.resources)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import cmlab
from cmlab.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "cmlab", src / "cmlab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (built,) = out.glob("cmlab-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and no cmlab source on its path; the
    dependencies come from this interpreter's site-packages (a .pth line)."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def run(env: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / "cmlab"), *args], capture_output=True, text=True, timeout=120,
                          cwd=env, env={**os.environ, "COLUMNS": "200"})


def test_the_wheel_carries_the_data_with_the_version_in_one_place(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    assert wheel.name.startswith(f"cmlab-{cmlab.__version__}-")
    assert "cmlab/examples/quickstart.yaml" in names
    assert {f"cmlab/scenarios/builtin/{n}.yaml" for n in SCENARIOS} <= names
    for script in ("cmlab/images/recipes/base/cmlab-init", "cmlab/images/recipes/postgres-patroni/cmlab-vip-manager"):
        assert modes[script] & stat.S_IXUSR, f"{script} must stay executable: the image copies its mode"


def test_the_installed_wheel_lists_every_scenario_and_validates_an_example_by_name(installed: Path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import cmlab; print(cmlab.__file__)"],
                           capture_output=True, text=True, cwd=installed, check=True).stdout
    assert str(installed) in where, "the test must run the installed copy, not the sources"
    listed = run(installed, "scenarios")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in SCENARIOS), listed.stdout
    valid = run(installed, "validate", "quickstart")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "valid (postgres-patroni, 3 nodes" in valid.stdout
    recipes = subprocess.run([str(installed / "bin" / "python"), "-c",
                              "from cmlab.images.build import images_dir; print(sorted(p.name for p in images_dir().iterdir()))"],
                             capture_output=True, text=True, cwd=installed, check=True).stdout
    assert "postgres-patroni" in recipes and "base" in recipes
