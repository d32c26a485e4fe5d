"""Setting a dashboard panel's text cheaply: these panels have fixed sizes, so no layout pass.

A `Static.update()` asks for a layout of the whole screen by default; at a few
updates a second that is most of a frame's cost, and the UI thread's time is
taken from the training thread (docs/performance.md, "What we learned").
"""

from __future__ import annotations

from textual.widgets import Static


def set_text(widget: Static, text: str, layout: bool = False) -> None:
    """Show `text` in `widget`; nothing happens when it is already shown."""
    if getattr(widget, "_danlu_text", None) == text and not layout:
        return
    widget._danlu_text = text
    widget.update(text, layout=layout)
