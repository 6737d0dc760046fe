"""Data installed inside the package: the built-in scenarios
(``scenarios/builtin``), the image recipes (``images/recipes``) and the
example topologies (``examples``), read through :mod:`importlib.resources`,
so that an installed wheel finds them as a clone does (the clone's
``scenarios/``, ``images/`` and ``topologies/`` are links to them)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from cmlab.errors import CmlabError


def package_dir(*parts: str) -> Path:
    """The folder ``parts`` inside the installed ``cmlab`` package.

    :raises CmlabError: cmlab is installed where its files are no folders (a zip).
    """
    found = files("cmlab").joinpath(*parts)
    if not isinstance(found, Path):
        raise CmlabError(f"cmlab's data ({'/'.join(parts)}) is inside an archive ({found}); "
                         "install cmlab as a wheel or from a clone, not as a zip")
    return found


def examples_dir() -> Path:
    """The example topologies (``cmlab/examples/*.yaml``)."""
    return package_dir("examples")


def example_topology(given: str | Path) -> Path:
    """``given`` when it is a file, else the example topology of that name
    (``quickstart`` or ``quickstart.yaml``), else ``given`` (whose reading
    then says it is missing)."""
    path = Path(given)
    if path.exists() or path.parent != Path("."):
        return path
    example = examples_dir() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    return example if example.is_file() else path
