"""One line: run state, device, precision, run dir; the reason when the run has ended."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from ..run_state import RunState

# state -> CSS variable for its colour
_COLOURS = {
    "starting": "$foreground-muted", "running": "$success", "paused": "$warning",
    "evaluating": "$accent", "saving": "$accent", "stopping": "$warning",
    "finished": "$success", "stopped": "$warning", "failed": "$error",
}


class StatusLine(Static):
    def show(self, state: RunState) -> None:
        colour = _COLOURS.get(state.state, "$foreground")
        parts = [f"[b {colour}]● {state.state.upper()}[/]"]
        # the reason and what to do first: on 80 columns the run dir is what gets cut
        if state.detail:
            parts.append(escape(state.detail))
        if state.final:
            parts.append("[b]press q to quit[/b]")
        if state.run:
            parts.append(f"{state.run.device} · {state.run.precision} · {escape(state.run.run_dir)}")
        self.set_class(state.final, "-final")
        self.set_class(state.state == "failed", "-failed")
        self.update("  ".join(parts))
