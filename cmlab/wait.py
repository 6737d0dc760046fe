"""Bounded waits. Every wait has a deadline, derived by the caller from the
engine's timing (:class:`cmlab.engines.base.Timing`), never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from cmlab.errors import WaitTimeout

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    deadline_s: float,
    interval_s: float,
    what: str,
    describe: Callable[[T], str] = str,
) -> tuple[T, float]:
    """Call ``probe`` every ``interval_s`` seconds until ``done(result)``.

    :param deadline_s: give up after this many seconds.
    :param what: the condition, for the error message ("a ready cluster").
    :param describe: renders the last result for the error message.
    :returns: ``(last result, seconds waited)``.
    :raises WaitTimeout: the deadline passed; the message shows the last result.
    """
    t0 = time.monotonic()
    retrying = Retrying(
        stop=stop_after_delay(deadline_s), wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda r: not done(r)), reraise=False,
    )
    try:
        result = retrying(probe)
    except RetryError as exc:
        last = exc.last_attempt.result()
        raise WaitTimeout(f"no {what} after {deadline_s:.0f} s; last seen: {describe(last)}") from None
    return result, time.monotonic() - t0
