"""One line: run state, device, precision, run dir; the reason when the run has ended."""

from __future__ import annotations

import os

from rich.markup import escape
from textual.widgets import Static

from danlu.engine.control.events import State

from ..describe import state_detail
from ..format import nbytes
from ..run_state import RunState
from .text import set_text

# state -> CSS variable for its colour
_COLOURS = {
    State.STARTING: "$foreground-muted", State.RUNNING: "$success", State.PAUSED: "$warning",
    State.EVALUATING: "$accent", State.SAVING: "$accent", State.STOPPING: "$warning",
    State.FINISHED: "$success", State.STOPPED: "$warning", State.FAILED: "$error",
}


def short_dir(path: str) -> str:
    """The run dir relative to the current directory when it is under it (what people type)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def memory_summary(mem: dict) -> str:
    """One short memory figure for the status line (the Memory panel is hidden at 80x24)."""
    if isinstance(mem.get("cuda_allocated_mb"), (int, float)):
        text = f"gpu {nbytes(mem['cuda_allocated_mb'] * 2 ** 20)}"
        if isinstance(mem.get("cuda_total_mb"), (int, float)) and mem["cuda_total_mb"] > 0:
            text += f"/{nbytes(mem['cuda_total_mb'] * 2 ** 20)}"
        return text
    if isinstance(mem.get("rss_mb"), (int, float)):
        return f"rss {nbytes(mem['rss_mb'] * 2 ** 20)}"
    return ""


class StatusLine(Static):
    def show(self, state: RunState) -> None:
        colour = _COLOURS.get(state.state, "$foreground")
        parts = [f"[b {colour}]● {state.state.upper()}[/]"]
        # the reason and what to do first: on 80 columns the run dir is what gets cut
        if state.final:  # first: a long reason wraps and may be cut, this must not be
            parts.append("[b]press q to quit[/b] ·")
        detail = state_detail(state.state, state.detail)
        if detail:
            parts.append(escape(detail))
        if state.run and state.final:  # where the checkpoints are, before the device the run had
            parts.append(f"{escape(short_dir(state.run.run_dir))} · {state.run.device} · {state.run.precision}")
        elif state.run:
            where = [state.run.device, state.run.precision]
            if mem := memory_summary(state.memory):
                where.append(mem)
            parts.append(" · ".join(where) + f" · {escape(short_dir(state.run.run_dir))}")
        # a reason (a failure, a stop on a fault) may wrap to three rows; a finished run or a plain stop
        # ("at step N") stays on one, the ellipsis cutting the device first
        reason = state.state == State.FAILED or (state.state == State.STOPPED and not detail.startswith("at step"))
        self.set_class(state.final, "-final")
        self.set_class(reason, "-reason")
        self.set_class(state.state == State.FAILED, "-failed")
        # only a status that may wrap changes its height
        set_text(self, "  ".join(parts), layout=reason)
