"""A scenario's steps made concrete for one trial: composition unrolled,
random choices drawn, durations in seconds.

``plan(steps, env, rng)`` is pure: the same steps, timing and seed give the
same list, so a seeded scenario runs to the same step timeline every time
(the targets a ``one`` or ``minority`` picks are drawn by the nemesis from
the same seed, see :func:`seeds`). Random choices follow Jepsen's
generators: ``one-of`` picks a step, ``stagger`` sleeps a uniform time in
[0, 2 x stagger] seconds, ``flip-flop`` alternates two steps.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmlab.scenarios import duration

#: Upper bound on the steps one trial may unroll to (a repeat of repeats).
MAX_STEPS = 10_000


@dataclass(frozen=True)
class Planned:
    """One concrete step.

    :param verb: a verb a step emits (:attr:`_Step.emits`): fault, vip-flap, heal, wait, sleep, switchover, primary-in.
    :param args: its arguments; durations in seconds (keys ending ``_s``).
    :param origin: where it comes from in the file (``schedule[3].steps[0]``).
    """

    verb: str
    args: dict[str, Any] = field(default_factory=dict)
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"verb": self.verb, "args": self.args, "origin": self.origin}

    def describe(self) -> str:
        """The step in a few words, for a person watching: ``fault crash primary``,
        ``wait writes-resumed`` (durations are shown apart, by whoever shows it)."""
        words = [str(v) for k, v in self.args.items() if not k.endswith("_s") and k not in ("seconds", "on_timeout")
                 and isinstance(v, (str, int, float)) and v is not True]
        return " ".join([self.verb, *words])

    def length_s(self) -> float | None:
        """How long the step lasts, or may last at most, seconds: a wait's
        deadline, a flap's duration, a sleep; None for a step with no length of its own."""
        for key in ("deadline_s", "duration_s", "seconds"):
            if isinstance(self.args.get(key), (int, float)):
                return float(self.args[key])
        return None


def seeds(seed: int, trial: int) -> tuple[random.Random, str]:
    """The random generator of a trial's composition and the seed of its
    nemesis (target choices): both derived from the run's seed and the trial's
    number, so trial 3 of a replay draws what trial 3 drew."""
    return random.Random(f"cmlab:{seed}:{trial}:compose"), f"cmlab:{seed}:{trial}:targets"


def plan(steps: list[Any], env: Mapping[str, float], rng: random.Random, where: str = "schedule") -> list[Planned]:
    """The concrete steps of ``steps`` (models of :mod:`cmlab.scenarios.schema`).

    :param env: the value of each duration name, seconds (:func:`duration.environment`).
    :raises ValueError: a duration cannot be evaluated, or more than :data:`MAX_STEPS` steps.
    """
    out: list[Planned] = []
    for i, step in enumerate(steps):
        _one(step, env, rng, f"{where}[{i}]", out)
    return out


def _sec(value: Any, env: Mapping[str, float], origin: str) -> float:
    try:
        return duration.seconds(value, env)
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None


def _one(step: Any, env: Mapping[str, float], rng: random.Random, origin: str, out: list[Planned]) -> None:
    """Append the concrete steps of ``step`` (each kind says how: :meth:`_Step.unroll`)."""
    if len(out) > MAX_STEPS:
        raise ValueError(f"{origin}: the schedule unrolls to more than {MAX_STEPS} steps")

    def emit(verb: str, args: dict[str, Any], suffix: str = "") -> None:
        out.append(Planned(verb, args, origin + suffix))

    step.unroll(lambda value: _sec(value, env, origin), rng, emit,
                lambda inner, suffix: _one(inner, env, rng, origin + suffix, out))
