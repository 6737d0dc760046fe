"""The pytest plugin (entry point ``pytest11: cmlab``): labs as fixtures, safe
under pytest-xdist and after crashes. A thin shell over :mod:`cmlab.api`.

Use::

    from cmlab.pytest_plugin import lab_fixture

    quick = lab_fixture("topologies/quickstart.yaml", scope="module")

    @pytest.mark.cmlab_requires(capabilities=["nft"], min_nodes=3)
    def test_isolated_primary_fails_over(quick, cmlab_nemesis):
        nemesis = cmlab_nemesis(quick)
        nemesis.apply(nemesis.isolate("primary"))
        ...

* ``lab_fixture(path, scope=..., name=...)`` makes a fixture that brings the
  lab up once per scope and removes it after (``--cmlab-keep`` keeps a lab
  whose test failed). Under xdist every worker gets its own lab, named
  ``<name>-<worker>``; subnets are chosen under a host-wide lock.
* ``cmlab_lab``: the lab of ``--cmlab-topology`` (module scope).
* ``cmlab_nemesis``: ``cmlab_nemesis(lab)`` gives the lab's nemesis and heals
  it after the test.
* ``cmlab_results``: a results directory for the test.
* ``@pytest.mark.cmlab_requires(engine=..., min_nodes=..., capabilities=[...])``
  skips, with the reason, a test this host or topology cannot run.
* On failure, a forensics bundle (status, faults, nftables and qdiscs of each
  node, the event log, the containers' logs) is written under the results
  directory and attached to the report.
* Every lab carries its owner (this process); at start the plugin reaps labs
  whose owner is gone, and SIGTERM runs the teardowns like Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cmlab.api import Lab, capture, current_owner, host_capabilities, reap, results_dir, topology_name
from cmlab.errors import CmlabError, DockerUnavailable

_FAILED_LABS = pytest.StashKey[set]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cmlab", "cmlab labs")
    group.addoption("--cmlab-topology", help="topology file of the cmlab_lab fixture")
    group.addoption("--cmlab-engine", help="run the labs with this engine instead of their topology's")
    group.addoption("--cmlab-keep", action="store_true", help="keep a lab whose test failed, for inspection")
    group.addoption("--cmlab-results", help="results directory (sets CMLAB_RESULTS_DIR)")
    group.addoption("--cmlab-no-reap", action="store_true", help="do not reap crashed runs' labs at start")
    group.addoption("--cmlab-fresh", action="store_true",
                    help="initialise every lab's cluster: neither restore nor save snapshots (cmlab up --fresh)")
    group.addoption("--cmlab-init-swarm", action="store_true",
                    help="labs across hosts: join their hosts into one swarm where they are in none (cmlab up --init-swarm)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cmlab_requires(engine=None, min_nodes=0, capabilities=()): "
                            "skip unless the lab's engine, size and this host's capabilities allow")
    results = config.getoption("--cmlab-results")
    if results:
        os.environ["CMLAB_RESULTS_DIR"] = str(Path(results).resolve())
    # SIGTERM (a CI runner cancelling the job) runs the teardowns as Ctrl-C does.
    global _INSTALLED_BY
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        _INSTALLED_BY = os.getpid()
        signal.signal(signal.SIGTERM, _terminate)


_INSTALLED_BY = 0


def _terminate(signum: int, frame: Any) -> None:
    if os.getpid() != _INSTALLED_BY:
        # A forked child (a library's helper process) must not run the session's
        # teardowns: that would remove the labs under the parent's feet.
        os._exit(128 + signum)
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("--cmlab-no-reap") or worker_id(session.config) not in ("main", "gw0"):
        return
    try:
        for lab in reap():
            session.config.issue_config_time_warning(pytest.PytestWarning(f"cmlab: reaped lab '{lab}' left by a crashed run"), 2)
    except DockerUnavailable:
        pass


def worker_id(config: pytest.Config) -> str:
    """``gw0``, ``gw1``... under pytest-xdist, ``main`` otherwise."""
    return os.environ.get("PYTEST_XDIST_WORKER") or getattr(config, "workerinput", {}).get("workerid", "main")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for lab in _labs_of(item):
            item.session.stash.setdefault(_FAILED_LABS, set()).add(lab.plan.name)
            try:
                bundle = forensics(lab, item.nodeid)
                report.sections.append((f"cmlab forensics: {lab.plan.name}", f"bundle: {bundle}\n" + (bundle / "status.txt").read_text()))
            except Exception as exc:  # noqa: BLE001 - forensics must never hide the failure
                report.sections.append((f"cmlab forensics: {lab.plan.name}", f"could not collect: {exc}"))


def _labs_of(item: pytest.Item) -> list[Lab]:
    funcargs = getattr(item, "funcargs", {})
    return [v for v in funcargs.values() if isinstance(v, Lab)]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("cmlab_requires"):
        caps = host_capabilities()
        for name in mark.kwargs.get("capabilities", ()):
            cap = caps.get(name)
            if cap is None or not cap.ok:
                pytest.skip(f"this host lacks {name}: {cap.detail if cap else 'unknown capability'}")
        labs = [v for k, v in item.funcargs.items() if isinstance(v, Lab)] if hasattr(item, "funcargs") else []
        for lab in labs:
            engine = mark.kwargs.get("engine")
            if engine and lab.plan.engine != engine:
                pytest.skip(f"needs engine {engine}; lab {lab.plan.name} runs {lab.plan.engine}")
            if len(lab.plan.nodes) < mark.kwargs.get("min_nodes", 0):
                pytest.skip(f"needs {mark.kwargs['min_nodes']} nodes; lab {lab.plan.name} has {len(lab.plan.nodes)}")


def lab_fixture(topology: str | Path, scope: str = "module", name: str | None = None) -> Callable[..., Any]:
    """A fixture that brings up the lab of ``topology`` for ``scope`` and removes it after.

    :param name: the lab's name (default: the topology's); the xdist worker id
        is appended, so parallel workers never share a lab.
    """

    @pytest.fixture(scope=scope)
    def _lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
        yield from lab_lifecycle(request, Path(topology), name)

    return _lab


def lab_lifecycle(request: pytest.FixtureRequest, topology: Path, name: str | None) -> Iterator[Lab]:
    """Bring the lab up, yield it, and remove it (unless it failed and
    ``--cmlab-keep``); for fixtures that build their topology themselves."""
    config = request.config
    base = name or topology_name(topology) or topology.stem
    worker = worker_id(config)
    lab_name = base if worker == "main" else f"{base}-{worker}"[:20]
    try:
        lab = Lab.from_topology(topology, owner=current_owner(), name=lab_name, engine=config.getoption("--cmlab-engine"))
    except DockerUnavailable as exc:
        pytest.skip(f"no Docker Engine: {exc}")
    try:
        lab.up(init_swarm=bool(config.getoption("--cmlab-init-swarm")), fresh=bool(config.getoption("--cmlab-fresh")))
        yield lab
    finally:
        failed = lab.plan.name in request.session.stash.get(_FAILED_LABS, set())
        if failed and config.getoption("--cmlab-keep"):
            print(f"\ncmlab: keeping lab '{lab.plan.name}' after a failure; `cmlab down {lab.plan.name}` removes it")
        else:
            lab.down()


@pytest.fixture(scope="module")
def cmlab_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The lab of ``--cmlab-topology`` (skipped when none is given)."""
    topology = request.config.getoption("--cmlab-topology")
    if not topology:
        pytest.skip("no --cmlab-topology given")
    yield from lab_lifecycle(request, Path(topology), None)


@pytest.fixture
def cmlab_nemesis() -> Iterator[Callable[..., Any]]:
    """``cmlab_nemesis(lab, seed=None)``: the lab's nemesis, healed after the test."""
    made = []

    def make(lab: Lab, seed: int | None = None) -> Any:
        nemesis = lab.nemesis(seed)
        made.append(nemesis)
        return nemesis

    yield make
    for nemesis in made:
        try:
            nemesis.heal()
        except CmlabError:
            pass


@pytest.fixture
def cmlab_results(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A results directory for the test: under ``--cmlab-results`` when given, else tmp_path."""
    root = request.config.getoption("--cmlab-results")
    if not root:
        return tmp_path
    path = Path(root) / request.node.nodeid.replace("/", "_").replace("::", "__")
    path.mkdir(parents=True, exist_ok=True)
    return path


def forensics(lab: Lab, nodeid: str) -> Path:
    """Write what a person needs to understand a failed test on ``lab``:
    status, the manager's own account (``cm_ctl query``/``show``, Patroni's
    /cluster), active faults, each node's nftables and qdiscs, the event log
    and the containers' logs. Returns the bundle's directory."""
    safe = nodeid.replace("/", "_").replace("::", "__").replace("[", "_").replace("]", "")[:150]
    return capture(lab, results_dir(lab.plan.name) / "forensics" / safe)
