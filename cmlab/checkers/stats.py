"""Statistics over trials: min / p50 / p95 / max with the spread."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted values: a value that was
    measured, not an interpolation (with 5 trials, p95 is the maximum)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(values: list[float | None]) -> dict[str, Any]:
    """``{n, missing, min, p50, p95, max, mean, stdev}`` of the values that
    are not None (``missing`` counts the Nones: trials where it did not happen)."""
    xs = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"n": len(xs), "missing": len(values) - len(xs)}
    if xs:
        out.update(min=xs[0], p50=percentile(xs, 50), p95=percentile(xs, 95), max=xs[-1],
                   mean=statistics.fmean(xs), stdev=statistics.stdev(xs) if len(xs) > 1 else 0.0)
    return out
