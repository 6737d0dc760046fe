"""Durations in scenario files: seconds, as a number or as an expression of
the engine's own timing (``failover_s + 5``, ``max(vip_s, 2) * 3``).

A scenario holds for every engine because its waits are written against the
engine's :class:`~cmlab.engines.base.Timing` rather than in fixed seconds.
The grammar is deliberately tiny: numbers, the names of :data:`NAMES`,
``+ - * /``, parentheses, ``min`` and ``max``. Nothing else is evaluated.

Scenario files come from other people, so a duration is bounded before it
is parsed (:data:`MAX_TEXT` characters) and after it is evaluated: a finite
number of seconds from 0 to :data:`MAX_SECONDS`. Every failure, a division
by zero or an overflow included, is a ``ValueError`` saying why.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

from cmlab.engines.base import Timing

#: The names a duration may use, each a number of seconds read from the
#: engine's timing (``rto`` is the scenario's own ``expect.rto-under``).
NAMES: dict[str, Callable[[Timing], float]] = {
    "start_s": lambda t: t.start_s,
    "failover_s": lambda t: t.failover_s,
    "vip_s": lambda t: t.vip_s,
    "vip_repair_s": lambda t: t.vip_repair_s,
    "poll_s": lambda t: t.poll_s,
    "quorum_leader_loss_s": lambda t: t.quorum_leader_loss_bound_s,
    "frozen_primary_s": lambda t: t.frozen_primary_bound_s,
}
RTO = "rto"
#: The longest duration accepted, seconds (a day: no trial waits longer).
MAX_SECONDS = 86400.0
#: The longest duration expression accepted, characters.
MAX_TEXT = 200
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CALLS = {"min": min, "max": max}

Duration = float | str


def names_in(value: Duration) -> set[str]:
    """The timing names a duration uses.

    :raises ValueError: not a number or a valid expression (the message says why).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or an expression, not a boolean")
    if isinstance(value, (int, float)):
        _bounded(float(value), str(value))
        return set()
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or an expression (e.g. failover_s + 5)")
    if len(value) > MAX_TEXT:
        raise ValueError(f"a duration expression of {len(value)} characters; at most {MAX_TEXT}")
    try:
        tree = ast.parse(value, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError(f"'{value}' is not a duration expression (e.g. failover_s + 5)") from None
    found: set[str] = set()
    _walk(tree.body, found, str(value))
    return found


def _walk(node: ast.AST, found: set[str], text: str) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return
    if isinstance(node, ast.Name):
        if node.id not in NAMES and node.id != RTO:
            raise ValueError(f"unknown name '{node.id}' in '{text}' (names: {', '.join([*NAMES, RTO])})")
        found.add(node.id)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _walk(node.left, found, text)
        _walk(node.right, found, text)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _walk(node.operand, found, text)
        return
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS and not node.keywords
            and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args)):
        for arg in node.args:
            _walk(arg, found, text)
        return
    raise ValueError(f"'{text}' may use only numbers, {', '.join([*NAMES, RTO])}, + - * /, min() and max() "
                     "(of two values or more)")


def environment(timing: Timing, rto_s: float | None) -> dict[str, float]:
    """The value of every name for one engine's timing, seconds."""
    env = {name: float(get(timing)) for name, get in NAMES.items()}
    if rto_s is not None:
        env[RTO] = rto_s
    return env


def seconds(value: Duration, env: Mapping[str, float]) -> float:
    """A duration's value in seconds.

    :raises ValueError: not a valid duration, a name without a value (``rto``
        when the scenario promises none), or a negative result.
    """
    names_in(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        result = float(_eval(ast.parse(value, mode="eval").body, env, value))
    except ZeroDivisionError:
        raise ValueError(f"'{value}' divides by zero") from None
    except OverflowError:
        raise ValueError(f"'{value}' overflows (a duration is at most {MAX_SECONDS:.0f} s)") from None
    return _bounded(result, value)


def _bounded(result: float, text: str) -> float:
    """``result`` if it is a finite number of seconds in [0, :data:`MAX_SECONDS`].

    :raises ValueError: saying which bound it breaks.
    """
    if not math.isfinite(result):
        raise ValueError(f"'{text}' is {result}: a duration is a finite number of seconds")
    if result < 0:
        raise ValueError(f"'{text}' is {result:g} s: a duration cannot be negative")
    if result > MAX_SECONDS:
        raise ValueError(f"'{text}' is {result:g} s: a duration is at most {MAX_SECONDS:.0f} s (a day)")
    return result


def _eval(node: ast.AST, env: Mapping[str, float], text: str) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ValueError(f"'{text}' uses {node.id}, which has no value here"
                             + (" (the scenario promises no rto-under)" if node.id == RTO else ""))
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env, text), _eval(node.right, env, text))
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, env, text)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return _CALLS[node.func.id](*(_eval(a, env, text) for a in node.args))
