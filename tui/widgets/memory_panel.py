"""Whatever memory/device counters the engine sends; unknown keys shown as they come."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from ..format import nbytes, num
from ..run_state import RunState
from .text import set_text

# Known keys in display order with a label; anything else follows, sorted.
# The engine's keys (engine/loop/telemetry.py) and their labels, in display order.
_KNOWN = {
    "cuda_allocated_mb": "allocated", "cuda_reserved_mb": "reserved", "cuda_peak_mb": "peak",
    "cuda_total_mb": "gpu total", "gpu_util": "gpu util", "gpu_temp_c": "gpu temp",
    "gpu_power_w": "gpu power", "rss_mb": "rss", "cpu_percent": "cpu",
}


def format_memory(key: str, value: Any) -> str:
    """A readable value, with the unit guessed from the key's name."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    k = key.lower()
    if k.endswith("_mb"):
        return nbytes(value * 2 ** 20)
    if k.endswith("_gb"):
        return nbytes(value * 2 ** 30)
    if any(w in k for w in ("bytes", "alloc", "reserved", "peak", "rss", "mem_used", "mem_total")):
        return nbytes(value)
    if "temp" in k:
        return f"{value:.0f}°C"
    if "power" in k:
        return f"{value:.0f} W"
    if "util" in k or k in ("cpu", "cpu_percent") or k.endswith("_pct"):
        return f"{value:.0f}%"
    return num(value)


class MemoryPanel(Static):
    def on_mount(self) -> None:
        self.border_title = "Memory"

    def show(self, state: RunState) -> None:
        mem = state.memory
        if not mem:
            set_text(self, "[dim]no memory counters yet[/]")
            return
        keys = [k for k in _KNOWN if k in mem] + sorted(k for k in mem if k not in _KNOWN)
        label_w = max(len(_KNOWN.get(k, k)) for k in keys)
        set_text(self, "\n".join(f"{_KNOWN.get(k, k):<{label_w}} {format_memory(k, mem[k])}"
                              for k in keys))
