"""The config as a form: one row per key, a fitting control, its help, default and problems.

FormNav sits above it: a link per section (the one in view lit), and a find box that
narrows the form to the keys whose name holds what you type.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from danlu.engine.config.schema import BUILTIN_DATA, SECTIONS
from danlu.engine.config.knobs import Knob
from danlu.engine.config.yaml_edit import DELETE, same_value

from ..editor_model import MODEL_SUGGESTIONS, Checked, default_of, read_input, section_knobs, show_value

# Name keys whose Select offers suggestions; the current value is added when it is custom.
SUGGESTIONS = {"data.name": BUILTIN_DATA, "model.name": MODEL_SUGGESTIONS}


def field_id(path: str) -> str:
    """A widget id for a dotted path: 'optim.lr' -> 'f-optim-lr'."""
    return "f-" + path.replace(".", "-")


class FieldRow(Vertical):
    """One key: label and control on a line, then its help and default, then its problems."""

    def __init__(self, path: str, knob: Knob, value: Any, present: bool, default: Any):
        super().__init__(classes="field", id="row-" + field_id(path)[2:])
        self.path, self.knob, self.value, self.present, self.default = path, knob, value, present, default

    def compose(self) -> ComposeResult:
        key = self.path.split(".", 1)[1]
        with Horizontal(classes="field-line"):
            yield Label(key, classes="field-key")
            yield self._control()
        default = show_value(self.default) or "empty"
        yield Static(f"{self.knob.help} [dim]Default: {default}[/dim]", classes="field-help", markup=True)
        yield Static("", classes="field-error")

    def _control(self) -> Widget:
        knob, fid = self.knob, field_id(self.path)
        shown = self.value if self.present else self.default
        suggestions = SUGGESTIONS.get(self.path)
        if knob.choices or suggestions:
            options = list(knob.choices or suggestions)
            if isinstance(shown, str) and shown not in options:
                options.append(shown)  # a custom value (module:callable) stays selectable
            value = shown if shown in options else Select.NULL
            return Select([(o, o) for o in options], value=value, allow_blank=knob.optional or value is Select.NULL,
                          prompt="(empty: " + ("natural unit" if self.path == "schedule.interval" else "default") + ")",
                          id=fid, classes="field-control", compact=True)
        if knob.type == "bool":
            return Switch(value=bool(shown), id=fid, classes="field-control")
        return Input(show_value(self.value) if self.present else "",
                     placeholder=show_value(self.default) or "empty", id=fid, classes="field-control",
                     select_on_focus=False, compact=True)

    def show_problems(self, messages: list[str]) -> None:
        err = self.query_one(".field-error", Static)
        err.update("\n".join(f"✗ {m}" for m in messages))
        self.set_class(bool(messages), "-invalid")


class ConfigForm(VerticalScroll):
    """Section by section; only the keys the chosen optimizer and scheduler take.

    The form never edits text: it reports `Edited(path, value)` and the screen
    writes the text, then calls `show()` with what the new text holds.
    """

    class Edited(Message):
        """A person changed a field; value is DELETE when emptied (the default applies)."""

        def __init__(self, path: str, value: Any):
            super().__init__()
            self.path, self.value = path, value

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, can_focus=False)
        self.checked: Checked | None = None
        self._built_for: dict[str, Any] = {}
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="form-problems")
        yield Static("", id="form-nomatch")
        for section in SECTIONS:
            yield Static(section, classes="section-title", id=f"title-{section}")
            yield Vertical(id=f"section-{section}", classes="section")

    async def show(self, checked: Checked, rebuild: bool = False) -> None:
        """Show what a text holds; rows are rebuilt where the keys or values changed."""
        self.checked = checked
        note = self.query_one("#form-problems", Static)
        if checked.raw is None:
            note.update("\n".join(f"✗ {p.message}" for p in checked.problems)
                        + "\nThe form needs YAML that parses: fix it in the raw view (F2).")
            note.display = True
            for s in self.query(".section"):
                s.display = False
            return
        raw = checked.raw
        for section in SECTIONS:
            sec = raw.get(section) if isinstance(raw.get(section), dict) else {}
            knobs = section_knobs(section, raw)
            state = tuple(knobs)  # rows keep their own values while a person types in them
            box = self.query_one(f"#section-{section}", Vertical)
            box.display = True
            if rebuild or self._built_for.get(section) != state:
                self._built_for[section] = state
                rows = [FieldRow(f"{section}.{k}", knob, sec.get(k), k in sec, default_of(f"{section}.{k}", raw))
                        for k, knob in knobs.items()]
                async with box.batch():
                    await box.remove_children()
                    await box.mount_all(rows)
        self.show_problems(checked)
        self._apply_filter()

    # -- finding and jumping -------------------------------------------------------
    def filter(self, text: str) -> list[str]:
        """Show only the keys whose dotted path holds every word of `text`; the paths shown."""
        self.filter_text = text.strip().lower()
        return self._apply_filter()

    def _apply_filter(self) -> list[str]:
        words = self.filter_text.split()
        nomatch = self.query_one("#form-nomatch", Static)
        if self.checked is None or self.checked.raw is None:
            nomatch.display = False
            return []
        shown = []
        for section in SECTIONS:
            box = self.query_one(f"#section-{section}", Vertical)
            hits = 0
            for row in box.query(FieldRow):
                row.display = all(w in row.path.lower() for w in words)
                if row.display:
                    hits += 1
                    shown.append(row.path)
            box.display = bool(hits) or not words
            self.query_one(f"#title-{section}", Static).display = box.display
        nomatch.update(f"No key matches '{self.filter_text}'. Esc shows every key again.")
        nomatch.display = bool(words) and not shown
        return shown

    def sections_shown(self) -> list[str]:
        return [s for s in SECTIONS if self.query_one(f"#section-{s}", Vertical).display]

    def section_in_view(self) -> str | None:
        """The section at the top of the view: the last whose title is at or above it."""
        current = None
        for section in self.sections_shown():
            title = self.query_one(f"#title-{section}", Static)
            if current is None or title.virtual_region.y <= self.scroll_y + 1:
                current = section
        return current

    def section_of(self, widget: Widget | None) -> str | None:
        row = self._row_of(widget) if widget is not None else None
        return row.path.split(".", 1)[0] if row is not None else None

    def jump_to(self, section: str) -> None:
        """Focus the section's first key and bring its title to the top."""
        box = self.query_one(f"#section-{section}", Vertical)
        rows = [r for r in box.query(FieldRow) if r.display]
        if rows:
            rows[0].query_one(".field-control").focus(scroll_visible=False)
        # after the next layout: a find just cleared brings rows back that move the title
        self.call_after_refresh(self.scroll_to_widget, self.query_one(f"#title-{section}", Static),
                                top=True, animate=False, immediate=True)

    def reveal(self, widget: Widget) -> None:
        """Scroll so the key `widget` belongs to starts at the top of the view."""
        row = self._row_of(widget)
        if row is not None and row.is_attached:
            self.scroll_to_widget(row, top=True, animate=False, immediate=True)

    def focus_first_match(self, select: bool = True) -> bool:
        """Focus the first key shown; with `select`, its value selected so typing replaces it."""
        for row in self.query(FieldRow):
            if row.display:
                control = row.query_one(".field-control")
                control.focus()
                if select and isinstance(control, Input):
                    control.select_all()
                return True
        return False

    def show_problems(self, checked: Checked) -> None:
        """Each problem under its field; the rest at the top of the form."""
        self.checked = checked
        shown = set()
        for row in self.query(FieldRow):
            msgs = [p.message for p in checked.for_path(row.path)]
            shown.update(msgs)
            row.show_problems(msgs)
        rest = [p.message for p in checked.problems if p.message not in shown]
        note = self.query_one("#form-problems", Static)
        note.update("\n".join(f"✗ {m}" for m in rest))
        note.display = bool(rest)

    def focus_first(self) -> None:
        if not self.focus_first_match(select=False):
            controls = self.query(".field-control")
            if controls:
                controls.first().focus()

    def focus_path(self, path: str) -> None:
        """Focus the control of the field `path` concerns (optim.betas[1] -> optim.betas)."""
        for row in self.query(FieldRow):
            if path == row.path or path.startswith((row.path + ".", row.path + "[")):
                row.query_one(".field-control").focus()
                row.scroll_visible()
                return

    def row(self, path: str) -> FieldRow:
        return self.query_one("#row-" + field_id(path)[2:], FieldRow)

    # -- controls -> Edited ------------------------------------------------------
    def _row_of(self, widget: Widget) -> FieldRow | None:
        for node in widget.ancestors:
            if isinstance(node, FieldRow):
                return node
        return None

    def _edited(self, widget: Widget, value: Any) -> None:
        row = self._row_of(widget)
        if row is None:
            return
        if not row.present and (value is DELETE or same_value(value, row.default)):
            return  # e.g. a Select announcing the default it was built with
        if row.present and value is not DELETE and same_value(row.value, value):
            return
        row.present = value is not DELETE
        row.value = None if value is DELETE else value
        self.post_message(self.Edited(row.path, value))

    @on(Input.Changed, ".field-control")
    def _input(self, event: Input.Changed) -> None:
        event.stop()
        row = self._row_of(event.input)
        if row is not None:
            self._edited(event.input, read_input(event.value, row.knob))

    @on(Select.Changed, ".field-control")
    def _select(self, event: Select.Changed) -> None:
        event.stop()
        self._edited(event.select, DELETE if event.value is Select.NULL else event.value)

    @on(Switch.Changed, ".field-control")
    def _switch(self, event: Switch.Changed) -> None:
        event.stop()
        self._edited(event.switch, event.value)



class SectionLink(Static):
    """A section's name in the FormNav; a click jumps there."""

    def __init__(self, section: str):
        super().__init__(section, classes="section-link", id=f"nav-{section}")
        self.section = section

    def on_click(self) -> None:
        self.post_message(FormNav.Jump(self.section))


class FindInput(Input):
    """The find box: Enter or down goes to the first key found."""

    BINDINGS = [Binding("down", "submit", "First match", show=False, id="find-first")]


class FormNav(Horizontal):
    """One row above the form: the sections (the one in view lit) and the find box."""

    class Jump(Message):
        """Go to a section (a click on its name)."""

        def __init__(self, section: str):
            super().__init__()
            self.section = section

    def compose(self) -> ComposeResult:
        with Horizontal(id="nav-sections"):
            for section in SECTIONS:
                yield SectionLink(section)
        yield FindInput(placeholder="ctrl+f: find a key", id="form-find", compact=True, select_on_focus=False)

    @property
    def find(self) -> Input:
        return self.query_one("#form-find", Input)

    current: str | None = None  # the section lit

    def show_current(self, section: str | None) -> None:
        self.current = section
        for link in self.query(SectionLink):
            link.set_class(link.section == section, "-current")

    def show_present(self, sections: list[str]) -> None:
        """Dim the sections the find left empty."""
        for link in self.query(SectionLink):
            link.set_class(link.section not in sections, "-empty")
