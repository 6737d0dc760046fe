"""The Python API: the facade over the lab (:mod:`cmlab.lab`), the runs of
scenarios on it, sweeps, bundles and replays, and the host's capabilities.

The CLI (:mod:`cmlab.cli`), the pytest plugin and the tests are thin shells
over this module (``tests/unit/test_layers.py`` holds the CLI and the
plugin to it)::

    from cmlab import api
    lab = api.Lab.from_topology("quickstart")   # an example by name, or a file
    status = lab.up()          # builds images if needed, waits until ready
    print(status.primary)
    run = api.run(lab, api.scenario("kill-primary"), trials=3, seed=42)
    lab.down()
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmlab.engines.base import NodeRole
from cmlab.engines.cluster import abilities
from cmlab.engines.registry import default_registry
from cmlab.errors import CmlabError, LabError, TopologyError
from cmlab.faults.kinds import KINDS as FAULT_KINDS  # noqa: F401 - the facade's names
from cmlab.faults.targets import HELP as TARGETS_HELP  # noqa: F401 - the facade's names
from cmlab.lab import (LOG_TAIL_LINES, Lab, LabStatus, NodeRow, connect, down, labs,  # noqa: F401 - the facade's names
                       prune_snapshots, reap, snapshots, to_repair)
from cmlab.runtime.capabilities import Capability, capabilities
from cmlab.progress import Progress
from cmlab.resources import example_topology
from cmlab.runtime.routes import host_routes
from cmlab.owner import current as current_owner  # noqa: F401 - the facade's names
from cmlab.state import results_dir
from cmlab.topology.resolve import parse_assignments  # noqa: F401 - the facade's names
from cmlab.topology import resolve
from cmlab.topology.plan import LabPlan
from cmlab.topology.yaml_source import read_yaml_file

# Docker's SDK, pyroute2, psycopg and matplotlib cost seconds of CPU to import,
# so every command would pay for them: they are imported where they are used
# (tests/unit/test_imports.py holds the CLI and the pytest plugin to it).
if TYPE_CHECKING:
    from cmlab.probes.probeset import Cadence
    from cmlab.replay import ReplayResult, Review
    from cmlab.scenarios import Scenario
    from cmlab.sweep import SweepResult
    from cmlab.trials import Run

#: Names this module hands out without importing them until asked (PEP 562).
_LAZY = {"ReplayResult": "cmlab.replay", "Review": "cmlab.replay", "Run": "cmlab.trials", "Scenario": "cmlab.scenarios",
         "SweepResult": "cmlab.sweep", "Cadence": "cmlab.probes.probeset", "Nemesis": "cmlab.faults.nemesis",
         "SimulatedHosts": "cmlab.runtime.simhosts"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmlab.api' has no attribute '{name}'")


def validate(path: str | Path, parameters: dict[str, Any] | None = None) -> LabPlan:
    """Check a topology file without Docker (``cmlab validate``): every rule, and
    that no AZ subnet overlaps the host's own networks. ``path`` may name an
    example instead (``quickstart``: :func:`cmlab.resources.example_topology`).

    :param parameters: ``parameters:`` keys that win over the file's (``--set``).
    :raises TopologyError: every problem, with its file:line:column and fix.
    """
    return resolve.load(example_topology(path), default_registry(), parameters=parameters, routes=host_routes())


def engines() -> dict[str, str]:
    """The engines by name, each with its one-line summary."""
    registry = default_registry()
    return {name: registry.get(name).summary for name in registry.names()}


def json_schema(of: str = "topology", engine: str | None = None) -> dict[str, Any]:
    """The JSON Schema of topology files (``of="topology"``), of scenario
    files (``"scenario"``), or of ``engine``'s ``parameters:``.

    :raises UnknownEngine: no engine of that name.
    """
    if engine:
        return default_registry().get(engine).Parameters.model_json_schema()
    if of == "scenario":
        from cmlab.scenarios.schema import ScenarioFile
        return ScenarioFile.model_json_schema(by_alias=True)
    from cmlab.topology.schema import Topology
    return Topology.model_json_schema()


def parse_cm_query(text: str) -> str:
    """A pasted ``cm_ctl query`` / ``gs_om -t status`` screen as JSON
    (:func:`cmlab.engines.opengauss_cm.query.parse`; no lab, no Docker).

    :raises ValueError: the text is no such screen (the line that is not, in the message).
    """
    from cmlab.engines.opengauss_cm.query import parse
    return parse(text).to_json()


def topology_name(path: str | Path) -> str | None:
    """The ``name:`` a topology file (or example) gives its lab, without checking the rest."""
    data, _ = read_yaml_file(example_topology(path))
    return data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else None


def examples() -> dict[str, str]:
    """The example topologies by name, each with its first comment line."""
    from cmlab.resources import examples_dir
    out = {}
    for path in sorted(examples_dir().glob("*.yaml")):
        first = next((ln.lstrip("# ").strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("#")), "")
        out[path.stem] = first
    return out


def status_json(status: LabStatus) -> str:
    return json.dumps(status.to_json(), indent=2)


# ---- scenarios, runs and the host ---------------------------------------------------------


def scenarios() -> dict[str, Scenario]:
    """The built-in scenarios by name (the files of ``scenarios/``)."""
    from cmlab.scenarios import SCENARIOS
    return dict(SCENARIOS)


def scenarios_for(lab_or_topology: str) -> dict[str, str]:
    """Whether each built-in scenario fits a lab: ``name -> ""`` when it does,
    else why not (its durations with the lab's timing, the targets, AZs,
    hosts, disks and VIPs its steps name, its AZ count;
    :meth:`Scenario.check_against`). ``lab_or_topology``: a topology file or
    example (read without Docker), else the name of a running lab.

    :raises TopologyError: the topology cannot be used. :raises LabError: no such lab.
    """
    from cmlab.errors import ScenarioError
    from cmlab.scenarios import SCENARIOS

    path = example_topology(lab_or_topology)
    plan = validate(path) if path.is_file() else Lab.attach(lab_or_topology).plan
    engine = default_registry().get(plan.engine)
    timing, able = engine.timing(plan), abilities(engine, plan)
    out = {}
    for name, sc in SCENARIOS.items():
        try:
            sc.check_against(plan, timing, able)
            out[name] = ""
        except ScenarioError as exc:
            out[name] = "; ".join(i.message for i in exc.issues)
    return out


def scenario(name_or_file: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path.

    :raises CmlabError: unknown name; :raises ScenarioError: an invalid file (file:line:column and fix).
    """
    from cmlab.scenarios import get as _get_scenario
    return _get_scenario(name_or_file)


def run(lab: Lab, scenario: Scenario, trials: int = 1, fresh: bool = False, cadence: Cadence | None = None,
        seed: int | None = None, directory: Path | None = None,
        on_trial: Callable[[Any, int], None] | None = None) -> Run:
    """Run ``trials`` trials of ``scenario`` on ``lab`` and write the reports
    (see :mod:`cmlab.trials`). ``cadence`` None: the scenario's workload;
    ``seed`` None: a random seed, recorded in the run; ``on_trial(trial, n)``
    is called as each trial ends. The lab's :class:`Progress` shows the run
    as it goes (:meth:`Progress.watching`: a live line at a terminal)."""
    from cmlab.trials import run_scenario
    return run_scenario(lab, scenario, trials, fresh, cadence, directory, seed, on_trial)


def trial_row(metrics: Any) -> dict[str, Any]:
    """A trial's metrics as its table row: column -> value as the report shows
    it (a list by its length), in the metric registry's order (:data:`cmlab.checkers.metrics.METRICS`)."""
    from cmlab.checkers.metrics import METRICS
    values = metrics.to_json()
    return {m.column: m.brief(values.get(m.name)) for m in METRICS if m.column}


def cadence(scenario: Scenario, write_ms: float | None = None, fast_ms: float | None = None,
            role_ms: float | None = None) -> Cadence:
    """The probes' cadence of a scenario's workload, with the intervals given
    (milliseconds) instead of the scenario's (see :func:`cmlab.trials.scenario_cadence`)."""
    from cmlab.trials import scenario_cadence
    return scenario_cadence(scenario, write_ms, fast_ms, role_ms)


def sweep(lab: Lab, scenario: Scenario, trials: int = 1, cadence: Cadence | None = None, seed: int | None = None,
          directory: Path | None = None) -> SweepResult:
    """Run a scenario with a ``sweep:`` once per setting, each on the lab
    brought up again with those parameters; the lab is brought back with its
    own afterwards (see :mod:`cmlab.sweep`).

    :raises TopologyError: a swept value is not valid for the engine (nothing touched).
    """
    from cmlab.sweep import run_sweep
    return run_sweep(lab, scenario, lambda path: Lab.from_topology(path, progress=lab.progress), trials, cadence,
                     seed, directory)


def rerender(run_dir: Path) -> dict[str, Any]:
    """Render a saved run's reports again from its histories (no lab needed);
    returns ``report.json``'s document.

    :raises CmlabError: not a run directory, a link in it, or a malformed file (one line, naming it).
    """
    from cmlab.report import rerender as _rerender
    return _rerender(run_dir)


def capture(lab: Lab, dest: Path) -> Path:
    """Write the lab as it is now into ``dest`` (status, the manager's account,
    faults, nftables and qdiscs, events, logs; see :func:`cmlab.bundle.capture_lab`)."""
    from cmlab.bundle import capture_lab
    return capture_lab(lab, dest)


def bundle(run_dir: Path, out: Path, with_images: bool = False) -> Path:
    """Pack a run directory into one ``.tar.zst`` file (with the images' ``docker save``
    if asked); see :mod:`cmlab.bundle`.

    :raises CmlabError: not a run directory with a bundle, or an image cannot be saved.
    """
    from cmlab.bundle import pack
    return pack(run_dir, out, with_images)


def review_replay(bundle_file: Path, name: str | None = None, parameters: dict[str, Any] | None = None,
                  allow_hosts: bool = False, trust_commands: bool = False, max_bytes: int | None = None,
                  progress: Progress | None = None) -> Review:
    """Unpack a bundle and decide what its replay would create and use, creating
    nothing else (see :mod:`cmlab.replay`): ``cmlab replay`` prints it and asks.

    :param name: the replay's lab name (refused when a lab of that name exists
        here); default: the bundle's, or ``<name>-rN`` when it is taken.
    :param parameters: ``parameters:`` given again (``--set``): the host inputs
        the bundle named (``package=...``), or any other, winning over the bundle's.
    :param allow_hosts: let a lab across hosts contact the bundle's Docker hosts.
    :param trust_commands: let parameters the cluster runs as commands through.
    :param max_bytes: cap on the bundle's unpacked bytes (default: 200 MiB, 2 GiB more for images).
    :returns: the review; its ``refusals`` say what keeps it from running.
    :raises CmlabError: the bundle is refused (unsafe, malformed, its plan and
        topology disagree), or ``name`` is taken; nothing is left of it.
    """
    from cmlab import replay as _replay
    run_dir, meta, report, scenario, bundle_plan = _replay.unpack_bundle(bundle_file, results_dir("replay"), max_bytes)
    try:
        return _review(run_dir, meta, report, scenario, bundle_plan, name, dict(parameters or {}), allow_hosts,
                       trust_commands, progress)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir.parent, ignore_errors=True)
        raise


def _review(run_dir: Path, meta: Any, report: Any, scenario: Scenario, bundle_plan: LabPlan, name: str | None,
            given: dict[str, Any], allow_hosts: bool, trust_commands: bool, progress: Progress | None) -> Review:
    from cmlab import replay as _replay
    from cmlab.replay import Review
    from cmlab.runtime.docker import DockerRuntime

    registry = default_registry()
    topology = run_dir / "lab" / "topology.yaml"
    data, positions = read_yaml_file(topology)
    engine = registry.get(bundle_plan.engine)
    # The two must be one lab; compared with the host inputs left out, which an
    # engine's checks would open (the bundle's `package: /etc/shadow`).
    unset = {k: None for k in engine.host_inputs}
    bundle_plan_here = bundle_plan.model_copy(update={"parameters": {**bundle_plan.parameters, **unset}})
    if resolve.plan_data(resolve.with_parameters(data, unset), str(topology), positions, registry, []) != bundle_plan_here:
        raise _replay.BundleRefused(f"{run_dir.name}: lab/plan.json and lab/topology.yaml describe different labs")
    refusals, notes = [], []
    for key in engine.host_inputs:
        if bundle_plan.parameters.get(key) is not None and key not in given:
            refusals.append(f"parameters.{key} names {bundle_plan.parameters[key]!r} on the bundle maker's host: give "
                            f"yours with --set {key}=PATH (or --set {key}=null to leave it out)")
    if bundle_plan.hosts and not allow_hosts:
        refusals.append(f"the lab spans Docker hosts ({', '.join(f'{h.name} at {h.endpoint}' for h in bundle_plan.hosts)}), "
                        "which cmlab would contact: give --allow-hosts if you trust them")
    lab: Lab | None = None
    plan = bundle_plan
    if not (bundle_plan.hosts and not allow_hosts):
        client = connect()
        taken = set(labs(client))
        if name and name in taken:
            raise LabError(f"a lab named '{name}' exists here, and a replay never touches a lab it did not make: "
                           "give another --name")
        new_name = name or _replay.free_name(bundle_plan.name, taken)
        if new_name != bundle_plan.name:
            notes.append(f"named '{new_name}', not the bundle's '{bundle_plan.name}'"
                         + ("" if name else " (a lab of that name exists here)"))
        used = DockerRuntime(client).used_subnets() + [net for net, _ in host_routes()]
        clash = _replay.overlapping([a.subnet for a in bundle_plan.azs], used)
        if clash:
            notes.append(f"subnets allocated here, not the bundle's ({'; '.join(clash)})")
        parameters = {**{k: None for k in engine.host_inputs if k not in given}, **given}
        try:
            lab = Lab.from_topology(topology, registry, progress, name=new_name, allocate=bool(clash), parameters=parameters)
        except TopologyError:
            if clash:
                raise
            # Another lab took one of the bundle's subnets since they were checked: allocate fresh ones.
            notes.append("subnets allocated here, not the bundle's (taken here while the replay was reviewed)")
            lab = Lab.from_topology(topology, registry, progress, name=new_name, allocate=True, parameters=parameters)
        plan = lab.plan
        scenario.check_against(plan, lab.timing, abilities(lab.engine, plan))
    defaults = engine.resolve_parameters({})[0]
    review = Review(run_dir, plan, lab, bundle_plan, scenario, meta, report, notes=notes,
                    changed={k: v for k, v in plan.parameters.items() if defaults.get(k) != v and k not in engine.host_inputs},
                    given={k: v for k, v in given.items() if k in engine.host_inputs})
    review.commands = engine.command_parameters(plan.parameters)
    if review.commands and not trust_commands:
        refusals.append(f"parameters the cluster runs as commands or loads as code ({', '.join(review.commands)}): "
                        "give --trust-commands if you trust them")
    archive = _replay.image_archive(run_dir)
    if archive is not None:
        review.images = _replay.archive_images(archive)
        recorded = _replay.read_json(run_dir / "lab" / "images.json", "the images' list")
        nodes = {n.container for n in bundle_plan.nodes}
        ids = {str(i.get("id")) for i in recorded if isinstance(i, dict) and i.get("container") in nodes} \
            if isinstance(recorded, list) else set()
        if len(ids) != 1 or next(iter(ids)) not in {i["id"] for i in review.images}:
            raise _replay.BundleRefused(f"{run_dir.name}: images.tar does not hold the one image lab/images.json "
                                        f"names for the nodes ({', '.join(sorted(ids)) or 'none named'})")
        review.node_image = next(iter(ids))
    elif lab is not None:
        review.build = _recipe_image(lab, bool(review.given))
    review.refusals = refusals
    return review


def _recipe_image(lab: Lab, given: bool) -> str:
    """What the review says of the nodes' image when the bundle carries none."""
    if given:
        return f"built here from cmlab's {lab.engine.recipe.name} recipe with the files you gave"
    from cmlab.images.build import ImageBuilder

    builder = ImageBuilder(lab.client)
    try:
        tag = builder.engine_tag(lab.engine.recipe, lab.engine.build_inputs(lab.plan))
    except CmlabError as exc:
        return f"built here from cmlab's {lab.engine.recipe.name} recipe, which cannot be built yet: {exc}"
    return f"{tag} ({'here already' if builder._exists(tag) else 'built here'} from cmlab's {lab.engine.recipe.name} recipe)"


def run_replay(review: Review, keep: bool = False) -> ReplayResult:
    """Run a reviewed replay (:func:`review_replay`): the same scenario with the
    same seed on the replay's own lab, verdicts and timings compared with the
    bundle's (see :mod:`cmlab.replay`). The lab is removed afterwards unless ``keep``.

    :raises CmlabError: the review has refusals, the lab cannot come up, or a step failed.
    """
    from cmlab import replay as _replay
    return _replay.run(review, keep)


def replay(bundle_file: Path, keep: bool = False, name: str | None = None, progress: Progress | None = None,
           parameters: dict[str, Any] | None = None, allow_hosts: bool = False, trust_commands: bool = False) -> ReplayResult:
    """Review a bundle and run its replay (:func:`review_replay`, :func:`run_replay`):
    from Python, calling this is the consent the command line asks for.

    :raises CmlabError: the bundle is refused, the review has refusals, the lab
        cannot come up, or a step failed.
    """
    return run_replay(review_replay(bundle_file, name, parameters, allow_hosts, trust_commands, progress=progress), keep)


def host_capabilities() -> dict[str, Capability]:
    """What this host can do (``cmlab doctor``), by capability name."""
    return capabilities()


def hosts_report(lab_or_topology: str) -> dict[str, list[Capability]]:
    """What each host of a lab across hosts can do (``cmlab doctor LAB``):
    host -> capabilities (engine, swarm, and the faults' kernel features,
    probed through the lab's helper there when the lab is up). Empty for a
    lab on one host (:func:`host_capabilities` covers it).

    :param lab_or_topology: a running lab's name, or a topology file.
    """
    lab = Lab.from_topology(lab_or_topology) if Path(lab_or_topology).is_file() else Lab.attach(lab_or_topology)
    if lab.runtime.hosts is None:
        return {}
    from cmlab.runtime.hosts import host_report
    return host_report(lab.runtime.hosts, lambda host: lab.runtime.runner(lab.plan, host))


__all__ = ["Lab", "cadence", "connect", "LabStatus", "NodeRole", "ReplayResult", "Review", "Run", "Scenario", "bundle", "capture", "down",
           "host_capabilities", "hosts_report", "labs", "reap", "replay", "rerender", "review_replay", "run", "run_replay", "scenario", "scenarios", "sweep",
           "validate"]
