"""The structure of a scenario file (``cmlab schema --scenario`` prints it).

A scenario file says what to do to a lab and what the cluster manager
promises about it::

    name: kill-primary
    summary: docker kill of the primary's container
    expect: {failover: true, rto-under: failover_s}
    schedule:
      - fault: crash
        target: primary
      - wait: writes-resumed
        deadline: rto + 5
      - heal

Every duration is seconds: a number, or an expression of the engine's timing
(:mod:`cmlab.scenarios.duration`). A step is a mapping with one verb key
(:data:`VERBS`), or the bare word ``heal``. ``repeat``, ``one-of``,
``flip-flop`` and ``sleep: {stagger: ...}`` are Jepsen's composition; the
random choices they make are drawn from the run's seed
(:mod:`cmlab.scenarios.compose`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from cmlab.scenarios import duration

Duration = Annotated[float | str, Field(description="seconds: a number, or an expression of the engine's timing "
                                                     "(failover_s + 5); see docs/scenarios.md")]

#: Conditions a ``wait`` step waits for.
#: writes-resumed: writes through a VIP acknowledged again (for 0.5 s) since the last fault;
#: primary-changed: the manager names a primary other than the trial's first;
#: vip-moved: a VIP held by one node other than the one that held it when the trial began;
#: fault-in-effect: the last fault observed in effect (read from the kernel or Docker);
#: ready: the cluster ready (one primary, every standby streaming, the VIP on the primary).
CONDITIONS = ("writes-resumed", "primary-changed", "vip-moved", "fault-in-effect", "ready")


def _check_duration(value: Any) -> Any:
    if value is not None:
        duration.names_in(value)
    return value


#: How a step makes its concrete steps (see :meth:`_Step.unroll`): the seconds of
#: a duration; emit a concrete step ``(verb, args[, origin suffix])``; unroll an
#: inner step ``(step, origin suffix)``.
Seconds = Callable[[Any], float]
Emit = Callable[..., None]
Again = Callable[["_Step", str], None]


class _Step(BaseModel):
    """A kind of step: one entry, which the schema, the checks, the
    composition (:mod:`.compose`) and the runner (:mod:`.schedule`) read."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    #: The keys that make a mapping this kind of step (its verbs).
    keys: ClassVar[tuple[str, ...]]
    #: The concrete verbs it unrolls to (the runner has one for each); none for composition.
    emits: ClassVar[tuple[str, ...]] = ()
    #: Whether it may be in ``setup`` (before the probes start).
    in_setup: ClassVar[bool] = False
    #: Its duration fields (Python names), each checked and evaluated with the lab's timing.
    durations: ClassVar[tuple[str, ...]] = ()
    #: Whether it disturbs the cluster: a trial is measured from the first such step.
    disturbs: ClassVar[bool] = False
    #: Its fields that name something in the lab, and what (see :attr:`cmlab.faults.kinds.Arg.refers`).
    refers: ClassVar[dict[str, str]] = {}
    #: The engine abilities it needs (:meth:`cmlab.engines.base.Engine.abilities`).
    needs: ClassVar[frozenset[str]] = frozenset()

    def references(self) -> list[tuple[str, str, Any]]:
        """``(key in the file, what it names, value)`` of each field that names something in the lab."""
        return [(type(self).model_fields[f].alias or f, what, getattr(self, f)) for f, what in self.refers.items()]

    def inner(self) -> list[tuple[str, list["_Step"]]]:
        """The steps it holds, by key (composition); none by default."""
        return []

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        """Its concrete steps for one trial, in order (random choices from ``rng``)."""
        raise NotImplementedError


class FaultStep(_Step):
    """Apply a fault: ``fault`` is a kind of :data:`cmlab.faults.kinds.KINDS`
    (``crash``, ``isolate``, ``split-azs``...); the other keys are its
    arguments (``target``, ``process``, ``percent``...), checked against it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    keys = ("fault",)
    emits = ("fault",)
    disturbs = True
    fault: str

    @model_validator(mode="after")
    def _arguments(self) -> "FaultStep":
        self.arguments()  # raises ValueError: an unknown kind or argument, a missing one, a wrong type
        return self

    def arguments(self) -> dict[str, Any]:
        """The builder's keyword arguments, typed (dashes made underscores).

        :raises ValueError: see :meth:`cmlab.faults.kinds.FaultKind.check`.
        """
        from cmlab.faults import kinds

        return kinds.get(self.fault).check(dict(self.model_extra or {}))

    def references(self) -> list[tuple[str, str, Any]]:
        from cmlab.faults import kinds

        kind = kinds.get(self.fault)
        return [(name.replace("_", "-"), arg.refers, value) for name, value in self.arguments().items()
                if (arg := kind.arg(name)) is not None and arg.refers]

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("fault", {"kind": self.fault, **self.arguments()})


class HealStep(_Step):
    """Undo every active fault (``heal: all``; the bare word ``heal`` too)."""

    keys = ("heal",)
    emits = ("heal",)
    heal: Literal["all"] = "all"

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("heal", {})


class WaitStep(_Step):
    """Wait until a condition holds, at least ``at-least`` seconds after the
    last fault took effect (or the step began, before any fault), at most
    ``deadline`` seconds after the step began. On the deadline: ``continue``
    (the trial measures what happened) or ``fail`` (the trial stops with an error)."""

    keys = ("wait",)
    emits = ("wait",)
    in_setup = True
    durations = ("at_least", "deadline")
    wait: Literal[CONDITIONS]  # type: ignore[valid-type]
    at_least: Duration = Field(0.0, alias="at-least")
    deadline: Duration
    on_timeout: Literal["continue", "fail"] = Field("continue", alias="on-timeout")

    _durations = field_validator("at_least", "deadline")(classmethod(lambda cls, v: _check_duration(v)))

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("wait", {"until": self.wait, "at_least_s": sec(self.at_least), "deadline_s": sec(self.deadline),
                      "on_timeout": self.on_timeout})


class SleepStep(_Step):
    """Do nothing for ``sleep`` seconds, or for a random time in [0, 2 x ``stagger``]
    seconds drawn from the seed (Jepsen's stagger)."""

    keys = ("sleep", "stagger")
    emits = ("sleep",)
    in_setup = True
    durations = ("sleep", "stagger")
    sleep: Duration | None = None
    stagger: Duration | None = None

    _durations = field_validator("sleep", "stagger")(classmethod(lambda cls, v: _check_duration(v)))

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        seconds = sec(self.sleep) if self.sleep is not None else round(rng.uniform(0, 2 * sec(self.stagger)), 3)
        emit("sleep", {"seconds": seconds})

    @model_validator(mode="after")
    def _one(self) -> "SleepStep":
        if (self.sleep is None) == (self.stagger is None):
            raise ValueError("give sleep: <seconds> or stagger: <seconds>, one of the two")
        return self


class VipFlapStep(_Step):
    """VIP churn in the background: the VIP toggled on ``node`` (a target
    designating one node) every ``period`` seconds for ``duration`` seconds,
    while the next steps run (``cmlab fault vip-flap``). A heal, or the end of
    the schedule, stops it and leaves the VIP as it was."""

    keys = ("vip-flap",)
    emits = ("vip-flap",)
    refers = {"vip_flap": "target", "vip": "vip"}
    durations = ("period", "duration")
    disturbs = True
    vip_flap: str = Field(alias="vip-flap")
    vip: str | None = None
    period: Duration = 0.5
    duration: Duration

    _durations = field_validator("period", "duration")(classmethod(lambda cls, v: _check_duration(v)))

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("vip-flap", {"node": self.vip_flap, "vip": self.vip, "period_s": sec(self.period),
                          "duration_s": sec(self.duration)})


class SwitchoverStep(_Step):
    """Ask the manager for a switchover to the first database node of the
    target (a fault target: ``sync-standby``, ``az:az2``, ``pg2``) that is not
    the primary."""

    keys = ("switchover",)
    emits = ("switchover",)
    needs = frozenset({"switchover"})
    refers = {"switchover": "target"}
    in_setup = True
    switchover: str

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("switchover", {"target": self.switchover})


class PrimaryInStep(_Step):
    """Put the primary in an AZ (a switchover if it is elsewhere): an AZ's
    name, ``quorum-majority`` (the AZ with the most quorum members) or
    ``quorum-minority``."""

    keys = ("primary-in",)
    emits = ("primary-in",)
    needs = frozenset({"switchover"})
    refers = {"primary_in": "primary-az"}
    in_setup = True
    primary_in: str = Field(alias="primary-in")

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        emit("primary-in", {"az": self.primary_in})


class RepeatStep(_Step):
    """The steps, ``repeat`` times over."""

    keys = ("repeat",)
    in_setup = True
    repeat: int = Field(ge=1, le=1000)
    steps: list["Step"] = Field(min_length=1)

    def inner(self) -> list[tuple[str, list[_Step]]]:
        return [("steps", self.steps)]

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        for n in range(self.repeat):
            for i, step in enumerate(self.steps):
                again(step, f".steps[{i}]#{n + 1}")


class OneOfStep(_Step):
    """One of the steps, chosen at random from the seed."""

    keys = ("one-of",)
    in_setup = True
    one_of: list["Step"] = Field(alias="one-of", min_length=2)

    def inner(self) -> list[tuple[str, list[_Step]]]:
        return [("one-of", self.one_of)]

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        i = rng.randrange(len(self.one_of))
        again(self.one_of[i], f".one-of[{i}]")


class FlipFlopStep(_Step):
    """Jepsen's flip-flop: the first step, then the second, ``times`` times over,
    with a stagger (random sleep in [0, 2 x ``stagger``] seconds) after each."""

    keys = ("flip-flop",)
    in_setup = True
    durations = ("stagger",)
    flip_flop: list["Step"] = Field(alias="flip-flop", min_length=2, max_length=2)
    times: int = Field(ge=1, le=1000)
    stagger: Duration = 0.0

    _durations = field_validator("stagger")(classmethod(lambda cls, v: _check_duration(v)))

    def inner(self) -> list[tuple[str, list[_Step]]]:
        return [("flip-flop", self.flip_flop)]

    def unroll(self, sec: Seconds, rng: random.Random, emit: Emit, again: Again) -> None:
        stagger = sec(self.stagger)
        for n in range(self.times):
            for i, step in enumerate(self.flip_flop):
                again(step, f".flip-flop[{i}]#{n + 1}")
                if stagger:
                    emit("sleep", {"seconds": round(rng.uniform(0, 2 * stagger), 3)}, ".stagger")


#: Every kind of step, one entry each.
STEPS: tuple[type[_Step], ...] = (FaultStep, HealStep, WaitStep, SleepStep, VipFlapStep, SwitchoverStep, PrimaryInStep,
                                  RepeatStep, OneOfStep, FlipFlopStep)
#: The verb key of each kind of step, and its model.
VERBS: dict[str, type[_Step]] = {key: model for model in STEPS for key in model.keys}
#: The verbs ``setup`` may hold.
SETUP_VERBS = tuple(model.keys[0] for model in STEPS if model.in_setup)
_TAGS = {model: model.__name__ for model in VERBS.values()}


def _verb(value: Any) -> str | None:
    """The model tag of a raw step (None: pydantic reports it as unmatched)."""
    if isinstance(value, _Step):
        return _TAGS[type(value)]
    if value == "heal":
        return "HealStep"
    if isinstance(value, dict):
        verbs = [k for k in value if k in VERBS and not (k == "stagger" and ("sleep" in value or "flip-flop" in value))]
        if len(verbs) == 1:
            return _TAGS[VERBS[verbs[0]]]
    return None


def _bare_heal(value: Any) -> Any:
    return {"heal": "all"} if value == "heal" else value


Step = Annotated[
    Union[tuple(Annotated[model, Tag(tag)] for model, tag in _TAGS.items())],  # type: ignore[valid-type]
    Discriminator(_verb, custom_error_type="step", custom_error_message=(
        "a step is a mapping with exactly one of the keys " + ", ".join(VERBS) + " (or the word heal)")),
    BeforeValidator(_bare_heal),
]


class Expect(BaseModel):
    """What the manager promises; each is checked on every trial."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    failover: bool | None = Field(None, description="true: a new primary must be promoted; false: the primary must "
                                                    "stay; null: either is legitimate")
    rto_under: Duration | None = Field(None, alias="rto-under",
                                       description="the longest client write outage promised, seconds; null: none")
    no_lost_writes: bool = Field(True, alias="no-lost-writes")
    no_split_brain: bool = Field(True, alias="no-split-brain")

    _durations = field_validator("rto_under")(classmethod(lambda cls, v: _check_duration(v)))


class Workload(BaseModel):
    """The writers' and observers' cadence, milliseconds (``cmlab run`` options override it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    write_ms: float = Field(20.0, alias="write-ms", gt=0, le=60000, allow_inf_nan=False)
    fast_ms: float = Field(20.0, alias="fast-ms", gt=0, le=60000, allow_inf_nan=False)
    role_ms: float = Field(200.0, alias="role-ms", gt=0, le=60000, allow_inf_nan=False)


class ScenarioFile(BaseModel):
    """A scenario file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
                             description="defaults to the file's name without .yaml")
    summary: str
    notes: str = Field("", description="what the manager legitimately does not promise here, and why")
    topology: str | dict[str, Any] | None = Field(
        None, description="the lab to run on when none is named: a topology file (relative to this file) or one inline")
    min_azs: int = Field(1, alias="min-azs", ge=1)
    workload: Workload = Workload()
    expect: Expect = Expect()
    setup: list[Step] = Field(default_factory=list, description="steps before the probes start (not measured)")
    schedule: list[Step] = Field(min_length=1, description="the steps of a trial, in order")
    on_starved: Literal["report", "fail", "discard"] = Field(
        "report", alias="on-starved",
        description="a trial the host distorted beyond its resolution (the metric `starved`): report it (marked), "
                    "fail it (a broken promise), or discard it (kept in the report, left out of the summary, the "
                    "totals and the verdict)")
    time_limit: Duration | None = Field(None, alias="time-limit",
                                        description="no step starts this many seconds after the first; null: none")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="engine parameters and the values to run the scenario with, each "
        "setting on its own lab (several parameters: every combination); see docs/scenarios.md")

    _durations = field_validator("time_limit")(classmethod(lambda cls, v: _check_duration(v)))

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"sweep {key}: give at least one value")
            if len(values) != len({repr(v) for v in values}):
                raise ValueError(f"sweep {key}: a value appears twice")
        combinations = 1
        for values in value.values():
            combinations *= len(values)
        if combinations > 64:
            raise ValueError(f"the sweep has {combinations} settings; at most 64 (each is a lab brought up)")
        return value


for _model in (RepeatStep, OneOfStep, FlipFlopStep, ScenarioFile):
    _model.model_rebuild()
