"""Interventions, checkpoints, alerts and log lines, newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog


REPEAT_WINDOW = 4


class EventLog(RichLog):
    def __init__(self, *, id: str | None = None, classes: str | None = None):
        # wrap: a failure's reason is the line that matters most and it is long
        super().__init__(max_lines=1000, wrap=True, markup=False, auto_scroll=True,
                         id=id, classes=classes)
        self.lines_text: list[str] = []  # plain text of what was written, for tests and search

    def on_mount(self) -> None:
        self.border_title = "Events"

    def add(self, level: str, text: str) -> None:
        # a stop says "stopping" as the command's answer, as the new state, and again as the state a
        # save returns to: a line that says what one of the last few said, at the same step, is left out
        if text.startswith("step ") and text in self.lines_text[-REPEAT_WINDOW:]:
            return
        self.lines_text.append(text)
        del self.lines_text[:-1000]
        # RichLog takes Rich styles, so look the theme's colour up by name
        colour = self.app.theme_variables.get(level) if level in ("warning", "error") else None
        self.write(Text(text, style=colour or ""))
