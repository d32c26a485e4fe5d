"""The raw YAML: a code editor with YAML highlighting, each problem written after its line."""

from __future__ import annotations

from rich.segment import Segment
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.strip import Strip
from textual.widgets import Static, TextArea

from ..editor_model import Checked

GAP = 3  # cells between the end of a line and its problem


class YamlEditor(TextArea):
    """A TextArea that draws problems at the end of the lines they concern (like an IDE)."""

    COMPONENT_CLASSES = TextArea.COMPONENT_CLASSES | {"yaml-editor--problem"}
    DEFAULT_CSS = """
    YamlEditor > .yaml-editor--problem { color: $text-error; background: $error 15%; }
    """

    def __init__(self, text: str = "", **kwargs):
        # soft_wrap off: one screen row per line, so a row maps to its line by the scroll offset
        super().__init__(text, language=_language(), theme="css", soft_wrap=False, tab_behavior="indent",
                         show_line_numbers=True, **kwargs)
        self.line_problems: dict[int, str] = {}

    def _on_key(self, event: events.Key) -> None:
        # TextArea (tab_behavior="indent") takes escape to move focus on, and stops it there, so
        # the screen's "esc Close" never ran in the raw view. Skip TextArea's handler (Textual
        # calls each class's _on_key in turn; prevent_default ends that) and let the key bubble
        # to the screen's bindings. A dialog on top has the focus, so its escape is its own.
        if event.key == "escape":
            event.prevent_default()

    def show_problems(self, line_problems: dict[int, str]) -> None:
        if line_problems != self.line_problems:
            self.line_problems = line_problems
            self.refresh()

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        line = self.scroll_offset.y + y
        msg = self.line_problems.get(line)
        if msg is None or line >= self.document.line_count:
            return strip
        width = self.size.width
        end = self.gutter_width + self.get_line(line).cell_len - self.scroll_offset.x + GAP
        room = width - max(end, self.gutter_width)
        if room < 8:  # no room after the text: the message takes the right end of the row
            end, room = max(self.gutter_width, width - min(width - self.gutter_width, 40)), min(width - self.gutter_width, 40)
        text = ("◀ " + msg)[:room]
        style = self.get_component_rich_style("yaml-editor--problem", partial=True)
        head = strip.crop(0, max(end, 0))
        return Strip.join([head, Strip([Segment(text, style)])]).adjust_cell_length(width, self.rich_style)


def _language() -> str | None:
    """yaml when tree-sitter's grammar is installed (the textual[syntax] extra); plain text otherwise."""
    from textual._tree_sitter import get_language  # no public probe; a missing grammar must not crash
    return "yaml" if get_language("yaml") is not None else None


class YamlView(Vertical):
    """The editor and, under it, every problem with its line number."""

    def __init__(self, text: str = "", *, id: str | None = None):
        super().__init__(id=id)
        self._text = text

    def compose(self) -> ComposeResult:
        yield YamlEditor(self._text, id="yaml-editor")
        yield Static("", id="raw-problems")

    @property
    def editor(self) -> YamlEditor:
        return self.query_one(YamlEditor)

    def show_problems(self, checked: Checked) -> None:
        by_line: dict[int, str] = {}
        for p in checked.problems:
            if p.line is not None and p.line not in by_line:
                by_line[p.line] = p.message
        self.editor.show_problems(by_line)
        lines = [f"{'L' + str(p.line + 1) if p.line is not None else '  ':>4} ✗ {p.message}" for p in checked.problems]
        box = self.query_one("#raw-problems", Static)
        box.update("\n".join(lines))
        box.display = bool(lines)
