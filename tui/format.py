"""Short, fixed-width renderings of numbers for narrow panels."""

from __future__ import annotations

import math


def num(x: float | None, digits: int = 3) -> str:
    """A number in about `digits` significant digits: 0.532, 3.00e-04, 1.2e+05."""
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, int) and abs(x) < 10 ** 6:
        return str(x)
    a = abs(x)
    if a == 0:
        return "0"
    if 1e3 <= a < 1e5:  # .3g would turn 12345 into 1.23e+04
        return f"{x:.0f}"
    if 1e-3 <= a < 1e3:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 1, 0)}e}"


def duration(seconds: float | None) -> str:
    """1h02m, 3m07s, 12s; '–' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h >= 24:
        return f"{h // 24}d{h % 24:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def nbytes(x: float) -> str:
    """1.5 GiB, 230 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} TiB"  # unreachable; keeps type checkers quiet


def rate(x: float | None) -> str:
    """Throughput: 12.3, 1.2k, 45k."""
    if x is None or not math.isfinite(x):
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def count(n: int | None) -> str:
    """A parameter count: 850, 12.3k, 11.2M, 1.3B."""
    if n is None:
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
