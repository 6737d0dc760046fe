"""Failover scenarios: what to do to a lab, and what the manager promises.

A scenario is a YAML file (:mod:`.schema`; ``cmlab schema --scenario``):
a schedule of steps (faults, heals, waits, switchovers, Jepsen's seeded
composition) and the promises checked on every trial. The built-in ones are
the files of ``scenarios/`` at the repository's root (:data:`SCENARIOS`);
``cmlab run FILE.yaml`` runs any other. Waits and bounds are written against
the engine's :class:`~cmlab.engines.base.Timing` (:mod:`.duration`), so one
file holds for every engine; where a manager legitimately cannot promise
something, ``notes`` says why and the promise is left out.

* :mod:`.schema`: the file's structure;
* :mod:`.duration`: durations as expressions of the engine's timing;
* :mod:`.compose`: the steps of one trial made concrete from the seed;
* :mod:`.schedule`: the interpreter that runs them on a lab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from cmlab.engines.base import Timing
from cmlab.errors import CmlabError, Issue, ScenarioError
from cmlab.scenarios import duration
from cmlab.scenarios.compose import Planned, plan, seeds
from cmlab.scenarios.schema import SETUP_VERBS, ScenarioFile, WaitStep
from cmlab.resources import package_dir
from cmlab.topology.yaml_source import Positions, join_path, load_yaml, read_yaml_file

if TYPE_CHECKING:
    from cmlab.topology.plan import LabPlan

#: The built-in scenarios' files (installed with the package).
SCENARIOS_DIR = package_dir("scenarios", "builtin")


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file.

    :param name: the scenario's name (the file's, without ``.yaml``, unless it says otherwise).
    :param text: the file as read, kept with every run (and so in its bundle).
    :param source: where it was read from.
    :param positions: document path -> (line, column), for errors found later (against a lab).
    """

    name: str
    spec: ScenarioFile
    text: str
    source: str
    positions: Positions = field(default_factory=dict, compare=False, repr=False)

    @property
    def summary(self) -> str:
        return self.spec.summary

    @property
    def notes(self) -> str:
        return self.spec.notes

    @property
    def failover(self) -> bool | None:
        """True: a new primary must be promoted; False: the primary must stay; None: either."""
        return self.spec.expect.failover

    @property
    def no_lost_writes(self) -> bool:
        return self.spec.expect.no_lost_writes

    @property
    def no_split_brain(self) -> bool:
        return self.spec.expect.no_split_brain

    @property
    def min_azs(self) -> int:
        return self.spec.min_azs

    def rto_bound_s(self, timing: Timing) -> float | None:
        """The longest client write outage promised with this timing, seconds; None: none promised."""
        rto = self.spec.expect.rto_under
        return None if rto is None else duration.seconds(rto, duration.environment(timing, None))

    def environment(self, timing: Timing) -> dict[str, float]:
        """Every duration name's value for this timing, seconds (``rto`` included when promised)."""
        return duration.environment(timing, self.rto_bound_s(timing))

    def time_limit_s(self, timing: Timing) -> float | None:
        """No step starts later than this after the first, seconds; None: no limit."""
        limit = self.spec.time_limit
        return None if limit is None else duration.seconds(limit, self.environment(timing))

    def check_against(self, plan: "LabPlan", timing: Timing, abilities: frozenset[str] | None = None) -> None:
        """Check the scenario against a lab before anything runs: every duration
        evaluated with the lab's timing, every target, AZ, host, disk and VIP
        named by a step known to the lab, enough AZs, and (given the engine's
        ``abilities``: :meth:`Engine.abilities`) every switchover or live role it
        needs.

        :raises ScenarioError: every problem, each at its file:line:column.
        """
        issues = duration_issues(self.spec, {f"lab {plan.name}": timing}) + target_issues(self.spec, plan)
        if abilities is not None:
            issues += ability_issues(self.spec, plan, abilities)
        if len(plan.azs) < self.min_azs:
            issues.append(Issue("min-azs", f"the scenario needs {self.min_azs} AZs; lab {plan.name} has {len(plan.azs)}",
                                "run it on a lab with more AZs (topologies/two-az.yaml)"))
        if issues:
            raise ScenarioError(self.source, issues, self.positions)

    def steps(self, timing: Timing, seed: int, trial: int) -> tuple[list[Planned], list[Planned], str]:
        """``(setup, schedule, nemesis seed)`` of one trial: concrete, from the run's seed.

        :raises CmlabError: a duration cannot be evaluated with this timing.
        """
        rng, targets_seed = seeds(seed, trial)
        env = self.environment(timing)
        try:
            return plan(self.spec.setup, env, rng, "setup"), plan(self.spec.schedule, env, rng), targets_seed
        except ValueError as exc:
            raise CmlabError(f"{self.source}: {exc}") from None


#: Type names pydantic puts in an error's place when a value matches no member of a union.
_UNION_MEMBERS = {"float", "str", "int", "bool", "none"}


def _issues(exc: ValidationError) -> list[Issue]:
    """pydantic's errors as issues at document paths (the step-kind tags dropped)."""
    from cmlab.topology.resolve import pydantic_issues

    issues = []
    for issue in pydantic_issues(exc, schema_command="cmlab schema --scenario"):
        parts = issue.where.split(".")
        where = ".".join(p for p in parts if not p.endswith("Step") and p not in _UNION_MEMBERS
                         and not p.startswith(("dict[", "list[")))
        issues.append(Issue(where or "<document>", issue.message, issue.fix))
    return issues


def _walk(steps: list[Any], where: str):
    """``(document path, step)`` of every step, the steps inside composition too."""
    for i, step in enumerate(steps):
        here = join_path(where, i)
        yield here, step
        for key, inner in step.inner():
            yield from _walk(inner, join_path(here, key))


def _meaning_issues(spec: ScenarioFile) -> list[Issue]:
    """What the structure allows but makes no sense (checked before any run)."""
    issues = []
    steps = list(_walk(spec.setup, "setup")) + list(_walk(spec.schedule, "schedule"))
    for where, step in steps:
        verb = next(iter(step.model_dump(by_alias=True, exclude_unset=True)), "")
        if where.startswith("setup") and not step.in_setup:
            issues.append(Issue(where, f"'{verb}' cannot run in setup (before the probes start)",
                                f"move it to schedule; setup holds {', '.join(SETUP_VERBS)}"))
        if where.startswith("setup") and isinstance(step, WaitStep) and step.wait == "writes-resumed":
            issues.append(Issue(where, "no writes flow during setup", "wait for ready, or move the step to schedule"))
        durations = [(k, getattr(step, k)) for k in step.durations]
        for key, value in durations:
            if value is not None and spec.expect.rto_under is None and duration.RTO in duration.names_in(value):
                issues.append(Issue(join_path(where, key.replace("_", "-")), "uses rto, but expect has no rto-under",
                                    "give expect.rto-under, or write the duration from the timing names"))
    if spec.expect.rto_under is not None and duration.RTO in duration.names_in(spec.expect.rto_under):
        issues.append(Issue("expect.rto-under", "cannot be written in terms of rto", "use the timing names"))
    if not any(step.disturbs for where, step in steps if where.startswith("schedule")):
        issues.append(Issue("schedule", "no fault step: a trial is measured from its first fault (or VIP flap)",
                            "add a step such as {fault: crash, target: primary}"))
    return issues


def ability_issues(spec: ScenarioFile, plan: "LabPlan", abilities: frozenset[str]) -> list[Issue]:
    """Each step that needs what the lab's engine cannot do (a switchover, a
    live role such as ``quorum-leader`` or ``cascade-upstream``)."""
    from cmlab.faults import targets

    words = {"switchover": "a switchover through the manager", "quorum-leader": "naming the quorum leader",
             "cascade": "a cascade standby (and whom it streams from)"}
    issues = []
    for where, step in list(_walk(spec.setup, "setup")) + list(_walk(spec.schedule, "schedule")):
        wanted = set(step.needs)
        for _key, what, value in step.references():
            if what == "target" and value is not None:
                for spec_ in value if isinstance(value, list) else [value]:
                    wanted |= targets.needs(str(spec_))
        for need in sorted(wanted - abilities):
            issues.append(Issue(where, f"needs {words.get(need, need)}, which lab {plan.name} (engine {plan.engine}) "
                                "does not have", "run it on a lab that has it, or drop the step"))
    return issues


def _one_host(plan: "LabPlan", value: Any) -> None:
    from cmlab.errors import FaultError

    raise FaultError(f"lab {plan.name} runs on one host: '{value}' needs a lab across hosts (a topology with hosts:)")


def target_issues(spec: ScenarioFile, plan: "LabPlan") -> list[Issue]:
    """Every node target, AZ, host, disk and VIP a step names, checked against
    ``plan`` (live roles such as ``primary`` are resolved when the step runs)."""
    from cmlab.errors import FaultError
    from cmlab.faults import targets

    def known(value: Any, names: list[str], extra: tuple[str, ...], what: str) -> None:
        for word in value if isinstance(value, list) else [value]:
            if word not in names and word not in extra:
                raise FaultError(f"unknown {what} '{word}' ({what}s: {', '.join(names + list(extra)) or 'none'})")

    def node_target(value: Any) -> None:
        targets.check(str(value), plan)

    azs, hosts = [a.name for a in plan.azs], [h.name for h in plan.hosts]
    #: What a step's field names (:attr:`_Step.refers`, :attr:`Arg.refers`) -> how it is checked.
    checkers: dict[str, Callable[[Any], None]] = {
        "target": node_target,
        "az": lambda v: known(v, azs, ("primary-az",), "AZ"),
        "primary-az": lambda v: known(v, azs, ("quorum-majority", "quorum-minority"), "AZ"),
        "host": lambda v: known(v, hosts, ("primary-host",), "host") if hosts else _one_host(plan, v),
        "disk": lambda v: known(v, [d.name for d in plan.disks], (), "disk"),
        "vip": lambda v: known(v, [x.name for x in plan.vips], (), "VIP"),
    }
    issues = []
    for where, step in list(_walk(spec.setup, "setup")) + list(_walk(spec.schedule, "schedule")):
        checks = [(key, value, checkers[what]) for key, what, value in step.references()]
        for key, value, check in checks:
            if value is None:
                continue
            try:
                check(value)
            except FaultError as exc:
                issues.append(Issue(join_path(where, key), str(exc), f"lab {plan.name} has nodes "
                                    f"{', '.join(n.name for n in plan.nodes)} and AZs {', '.join(azs)}"))
    return issues


@functools.cache
def default_timings() -> dict[str, Timing]:
    """Each registered engine's timing at its default parameters (a lab of
    three nodes in one AZ): what a scenario file's durations are evaluated
    with when no lab is named (``cmlab check-scenario``), seconds."""
    from cmlab.engines.registry import default_registry
    from cmlab.topology.resolve import plan_data

    registry, out = default_registry(), {}
    for name in registry.names():
        doc = {"name": "check", "engine": name, "azs": [{"name": "az1", "subnet": "10.213.0.0/24"}],
               "nodes": [{"name": f"n{i}", "az": "az1"} for i in (1, 2, 3)]}
        out[name] = registry.get(name).timing(plan_data(doc, "<defaults>", {}, registry, []))
    return out


def _durations(spec: ScenarioFile):
    """``(document path, duration)`` of every duration the file gives (the promise's first)."""
    if spec.expect.rto_under is not None:
        yield "expect.rto-under", spec.expect.rto_under
    if spec.time_limit is not None:
        yield "time-limit", spec.time_limit
    for where, step in list(_walk(spec.setup, "setup")) + list(_walk(spec.schedule, "schedule")):
        for key in step.durations:  # each kind of step names its duration fields
            if (value := getattr(step, key)) is not None:
                yield join_path(where, key.replace("_", "-")), value


def duration_issues(spec: ScenarioFile, timings: dict[str, Timing]) -> list[Issue]:
    """Every duration evaluated with each timing (label -> timing): one issue per
    duration that is not a finite number of seconds from 0 to a day (see
    :mod:`.duration`), naming the timings it failed with unless it failed with all."""
    failed: dict[tuple[str, str], list[str]] = {}
    for label, timing in timings.items():
        env = duration.environment(timing, None)
        for where, value in _durations(spec):
            try:
                seconds = duration.seconds(value, env)
            except ValueError as exc:
                if "has no value here" not in str(exc):  # rto without rto-under: the meaning checks say so
                    failed.setdefault((where, str(exc)), []).append(label)
                continue
            if where == "expect.rto-under":
                env = {**env, duration.RTO: seconds}
    return [Issue(where, message + ("" if len(labels) == len(timings) else f" (with {', '.join(labels)}'s timing)"),
                  "write a finite, non-negative number of seconds (at most a day)")
            for (where, message), labels in failed.items()]


def loads(text: str, source: str = "<string>", default_name: str | None = None) -> Scenario:
    """Parse a scenario file's text.

    :raises ScenarioError: every problem found, each at its file:line:column with a fix.
    """
    data, positions = load_yaml(text, source, ScenarioError)
    return _from_data(data, positions, text, source, default_name)


def _from_data(data: Any, positions: Positions, text: str, source: str, default_name: str | None) -> Scenario:
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _issues(exc), positions) from None
    issues = _meaning_issues(spec) or duration_issues(spec, default_timings())
    if issues:
        raise ScenarioError(source, issues, positions)
    name = spec.name or default_name
    if not name:
        raise ScenarioError(source, [Issue("name", "the scenario has no name", "add name: <a-name>")], positions)
    return Scenario(name, spec, text, source, positions)


def load(path: str | Path) -> Scenario:
    """Read a scenario file (its name defaults to the file's, without ``.yaml``).

    :raises ScenarioError: the file is missing, not valid YAML, or not a valid scenario.
    """
    p = Path(path)
    data, positions = read_yaml_file(p, ScenarioError)
    return _from_data(data, positions, p.read_text(encoding="utf-8"), str(p), p.stem)


@functools.cache
def builtin() -> dict[str, Scenario]:
    """The built-in scenarios, by name, in file-name order (read once, when first asked for)."""
    return {s.name: s for s in (load(p) for p in sorted(SCENARIOS_DIR.glob("*.yaml")))}


class _Builtin(Mapping[str, Scenario]):
    """:func:`builtin` as a mapping that reads the files when first used, not
    when cmlab is imported (every command would pay for it)."""

    def __getitem__(self, name: str) -> Scenario:
        return builtin()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(builtin())

    def __len__(self) -> int:
        return len(builtin())


#: The built-in scenarios by name (the files of :data:`SCENARIOS_DIR`).
SCENARIOS: Mapping[str, Scenario] = _Builtin()


def get(name: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path (``.yaml``/``.yml``).

    :raises CmlabError: unknown name (the message lists the scenarios).
    :raises ScenarioError: the file is not a valid scenario.
    """
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return load(name)
    from cmlab.vocabulary import current

    try:
        return SCENARIOS[current(name)]
    except KeyError:
        raise CmlabError(f"unknown scenario '{name}' (scenarios: {', '.join(SCENARIOS)}; or a scenario file)") from None
