"""The config editor: a form and the raw YAML of the same text, validated as you type.

The text is the single source of truth. The form reports edits; the screen
writes them into the text with comments kept (danlu.engine.config.yaml_edit) and shows what
the text now holds. Saving shows a diff against the file on disk first, and an
invalid config is written only on an explicit choice.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Input, Static, TextArea

from danlu.engine.config.yaml_edit import DELETE, EditError, edit

from ..editor_model import Checked, check, kind_switch, unified_diff
from ..widgets.config_form import ConfigForm, FormNav
from ..widgets.key_footer import KeyFooter
from ..widgets.lr_preview import LrPreview, PreviewFn
from ..widgets.yaml_view import YamlView
from .editor_dialogs import ConfirmDialog, DiffDialog, PathDialog

CHECK_DELAY_S = 0.3  # validate this long after the last keystroke


class EditorScreen(Screen):
    """Edit one config file; posts RunRequested or Closed for the app to act on."""

    BINDINGS = [
        Binding("f2,ctrl+t", "toggle_view", "Form/YAML", priority=True, id="editor-toggle",
                tooltip="Switch between the form and the raw YAML"),
        Binding("ctrl+f", "find", "Find", priority=True, id="editor-find",
                tooltip="Find a key by part of its name (lr, clip, warm...)"),
        Binding("ctrl+down", "next_section", "Section", key_display="^↑↓", priority=True, id="editor-next-section",
                tooltip="Next section (ctrl+up: previous)"),
        Binding("ctrl+up", "prev_section", "Previous section", show=False, priority=True,
                id="editor-prev-section"),
        Binding("ctrl+s", "save", "Save", priority=True, id="editor-save", tooltip="Review the diff and write the file"),
        Binding("f3", "save_as", "Save as", priority=True, id="editor-save-as"),
        Binding("ctrl+r", "run", "Run", priority=True, id="editor-run",
                tooltip="Save if needed, leave the editor and train this config"),
        Binding("f8", "next_problem", "Next problem", priority=True, id="editor-next-problem"),
        Binding("f4", "lr_find", "LR find", priority=True, id="editor-lr-find",
                tooltip="LR range test on this config; its suggestion can go into optim.lr"),
        Binding("escape", "close", "Close", id="editor-close"),
    ]
    # The footer leaves out keys from the end of this list first when they do not fit (the
    # palette has them all).
    FOOTER_PRIORITY = ("editor-close", "editor-save", "editor-toggle", "editor-find", "editor-run",
                       "editor-next-section", "editor-next-problem", "editor-save-as", "editor-lr-find")
    FORM_ONLY = ("find", "next_section", "prev_section")  # actions of the form view

    AUTO_FOCUS = None  # on_mount focuses the view that is shown

    class RunRequested(Message):
        """The person wants to train the (saved, valid) config at `path`."""

        def __init__(self, path: Path):
            super().__init__()
            self.path = path

    class Closed(Message):
        """The editor is done (saved or discarded)."""

    def __init__(self, path: Path | None, text: str, disk_text: str = "", *,
                 preview_fn: PreviewFn | None = None, view: str = "form"):
        super().__init__(id="editor")
        self.path = path
        self.text = text
        self.disk_text = disk_text      # the file as last read or written ('' for a new file)
        self.preview_fn = preview_fn
        self.view = view
        self.checked: Checked = check(text)
        self._raw_stale = False         # the TextArea lags behind form edits until shown
        self._form_stale = False        # the form lags behind raw edits until shown
        self._check_timer = None
        self._problem_index = -1
        self._before_find = None        # where the focus was when ctrl+f went to the find box

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="editor-status")
        yield FormNav(id="form-nav")
        with ContentSwitcher(initial=self.view, id="views"):
            yield ConfigForm(id="form")
            yield YamlView(self.text, id="raw")
        yield LrPreview(self.preview_fn, id="lr-preview")
        yield KeyFooter(self.FOOTER_PRIORITY)

    async def on_mount(self) -> None:
        form = self.query_one(ConfigForm)
        await form.show(self.checked, rebuild=True)
        self._show_checked()
        self.query_one(FormNav).display = self.view == "form"
        self.watch(form, "scroll_y", self._show_section, init=False)
        if self.view == "raw":
            self.query_one(YamlView).editor.focus()
        else:
            form.focus_first()
        self._show_section()

    def check_action(self, action: str, parameters) -> bool | None:
        if action in self.FORM_ONLY and self.view != "form":
            return False  # hidden from the footer; the key goes to the raw editor
        return True

    @property
    def dirty(self) -> bool:
        return self.text != self.disk_text

    @property
    def display_name(self) -> str:
        """What is being edited, as the status line and the questions name it."""
        return str(self.path) if self.path else "untitled"

    def _show_checked(self) -> None:
        """Problems everywhere they are shown, the status line, and the preview."""
        c = self.checked
        self.query_one(ConfigForm).show_problems(c)
        self.query_one(YamlView).show_problems(c)
        self.query_one(LrPreview).show(c.config)
        name = self.display_name
        state = "valid" if c.ok else f"{len(c.problems)} problem{'s' * (len(c.problems) != 1)} (F8: next)"
        view = "form" if self.view == "form" else "raw YAML"
        status = self.query_one("#editor-status", Static)
        status.update(f"{name}{' ● modified' if self.dirty else ''}  ·  {state}  ·  {view}")
        status.set_class(not c.ok, "-invalid")

    def _recheck(self) -> None:
        self._check_timer = None
        self.checked = check(self.text)
        self._show_checked()

    def _recheck_later(self) -> None:
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(CHECK_DELAY_S, self._recheck)

    def _flush_check(self) -> None:
        """Validate now (before save, run, or a view switch), dropping a pending check."""
        if self._check_timer is not None:
            self._check_timer.stop()
        self._recheck()

    # -- edits from either view -------------------------------------------------
    @on(ConfigForm.Edited)
    async def _form_edited(self, event: ConfigForm.Edited) -> None:
        changes = {event.path: event.value}
        switched = event.path in ("optim.name", "schedule.name") and event.value is not DELETE
        if switched:
            changes, notes = kind_switch(self.checked.raw, event.path.split(".")[0], event.value)
            for note in notes:
                self.notify(note, timeout=4)
        try:
            self.text = edit(self.text, changes)
        except EditError as e:
            self.notify(f"cannot apply the change: {e}", severity="error")
            return
        self._raw_stale = True
        if switched:  # the section's keys change: rebuild it now
            self._flush_check()
            await self.query_one(ConfigForm).show(self.checked)
            self._show_checked()
        else:
            self._show_status_only()
            self._recheck_later()

    def _show_status_only(self) -> None:
        status = self.query_one("#editor-status", Static)
        status.update(f"{self.display_name}{' ● modified' if self.dirty else ''}  ·  checking…")

    @on(TextArea.Changed)
    def _raw_edited(self, event: TextArea.Changed) -> None:
        text = event.text_area.text
        if text == self.text:
            return
        self.text = text
        self._form_stale = True
        self._show_status_only()
        self._recheck_later()

    async def action_toggle_view(self) -> None:
        self._flush_check()
        switcher = self.query_one(ContentSwitcher)
        nav = self.query_one(FormNav)
        if self.view == "form":
            self._clear_find()
            editor = self.query_one(YamlView).editor
            if self._raw_stale and editor.text != self.text:
                cursor = editor.cursor_location
                editor.load_text(self.text)
                editor.cursor_location = (min(cursor[0], editor.document.line_count - 1), 0)
            self._raw_stale = False
            self.view = "raw"
            switcher.current = "raw"
            nav.display = False
            editor.focus()
        else:
            form = self.query_one(ConfigForm)
            if self._form_stale:
                await form.show(self.checked, rebuild=True)
            self._form_stale = False
            self.view = "form"
            switcher.current = "form"
            nav.display = True
            form.focus_first()
        self.refresh_bindings()
        self._show_checked()

    # -- finding keys and jumping between sections (form view) -------------------------
    def _show_section(self) -> None:
        """Light the section being edited (the focused key's, when in view) or the one at the top."""
        form = self.query_one(ConfigForm)
        focused = self.focused
        section = form.section_of(focused) if focused is not None and focused.region else None
        self.query_one(FormNav).show_current(section or form.section_in_view())

    def on_descendant_focus(self) -> None:
        self._show_section()

    @on(FormNav.Jump)
    def _jump_clicked(self, event: FormNav.Jump) -> None:
        event.stop()
        self._jump(event.section)

    def _jump(self, section: str) -> None:
        self._clear_find()
        form = self.query_one(ConfigForm)
        form.jump_to(section)
        self.query_one(FormNav).show_current(section)

    def action_next_section(self) -> None:
        self._step_section(1)

    def action_prev_section(self) -> None:
        self._step_section(-1)

    def _step_section(self, step: int) -> None:
        form = self.query_one(ConfigForm)
        self._clear_find()
        sections = form.sections_shown()
        if not sections:
            self.notify("the form needs YAML that parses: fix it in the raw view (F2)", severity="warning")
            return
        # the lit section, not the focus: a jump's focus lands later, after keys already typed
        current = self.query_one(FormNav).current or sections[0]
        i = sections.index(current) if current in sections else 0
        self._jump(sections[(i + step) % len(sections)])

    def action_find(self) -> None:
        find = self.query_one(FormNav).find
        if not find.has_focus:
            self._before_find = self.focused
        find.focus()

    @on(Input.Changed, "#form-find")
    def _find_changed(self, event: Input.Changed) -> None:
        event.stop()
        form = self.query_one(ConfigForm)
        form.filter(event.value)
        self.query_one(FormNav).show_present(form.sections_shown())

    @on(Input.Submitted, "#form-find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.query_one(ConfigForm).focus_first_match():
            self.notify(f"no key matches '{event.value.strip()}'", severity="warning", timeout=3)

    def _clear_find(self) -> None:
        """Every key shown again, the find box empty."""
        find = self.query_one(FormNav).find
        if find.value:
            find.value = ""
        self.query_one(ConfigForm).filter("")
        self.query_one(FormNav).show_present(list(self.query_one(ConfigForm).sections_shown()))

    def _leave_find(self) -> bool:
        """Esc while finding: every key again, and back to where you were. False if not finding."""
        nav, form = self.query_one(FormNav), self.query_one(ConfigForm)
        if self.view != "form" or not (form.filter_text or nav.find.has_focus):
            return False
        in_box = nav.find.has_focus
        focused = self.focused
        self._clear_find()
        if in_box:
            before = self._before_find
            if before is not None and before.is_attached and before is not nav.find:
                before.focus()
            else:
                form.focus_first()
        elif focused is not None:
            # the rows come back at the next layout: only then is there a place to scroll to
            self.call_after_refresh(form.reveal, focused)
        self._before_find = None
        return True

    def action_lr_find(self) -> None:
        from .editor_lr_find import EditorLrFind
        self._flush_check()
        if self.checked.config is None:
            self.notify(f"fix {len(self.checked.problems)} problem(s) first", severity="error")
            return
        self.app.push_screen(EditorLrFind(self.checked.config), self._put_lr)

    def _put_lr(self, lr: float | None) -> None:
        """The range test's suggestion into optim.lr, as if typed in the view shown (not saved yet)."""
        if lr is None:
            return
        if self.view == "form":  # the field's own edit path: the text, the check, the preview follow
            self.query_one("#f-optim-lr", Input).value = f"{lr:g}"
        else:
            self.text = edit(self.text, {"optim.lr": lr})
            self.query_one(YamlView).editor.load_text(self.text)
            self._form_stale = True
            self._recheck_later()
        self.notify(f"optim.lr = {lr:g} (from the LR range test); ctrl+s saves")

    def action_next_problem(self) -> None:
        self._flush_check()
        problems = self.checked.problems
        if not problems:
            self.notify("no problems")
            return
        self._problem_index = (self._problem_index + 1) % len(problems)
        p = problems[self._problem_index]
        if self.view == "raw" and p.line is not None:
            editor = self.query_one(YamlView).editor
            editor.cursor_location = (p.line, 0)
            editor.scroll_cursor_visible(center=True)
            editor.focus()
        elif self.view == "form" and p.path:
            self._clear_find()  # the key may be one the find hides
            self.query_one(ConfigForm).focus_path(p.path)
        self.notify(p.message, severity="warning", timeout=4)

    # -- saving ---------------------------------------------------------------
    def action_save(self) -> None:
        if self.path is None:
            self.action_save_as()
        else:
            self._save_worker(self.path)

    def action_save_as(self) -> None:
        initial = str(self.path) if self.path else "configs/my.yaml"

        def chosen(value: str | None) -> None:
            if value:
                self._save_worker(Path(value).expanduser())

        self.app.push_screen(PathDialog("Save as", initial, "Path of the YAML file to write:"), chosen)

    @work(exclusive=True, group="editor-flow")
    async def _save_worker(self, path: Path) -> None:
        await self.save(path)

    async def save(self, path: Path) -> bool:
        """Confirm (if invalid), show the diff against the file on disk, write; True if written."""
        self._flush_check()
        c = self.checked
        warning = ""
        if not c.ok:
            first = c.problems[0].message
            choice = await self.app.push_screen_wait(ConfirmDialog(
                "Invalid config",
                f"{len(c.problems)} problem{'s' * (len(c.problems) != 1)}, first: {first}\n\n"
                "danlu run will refuse this file until they are fixed.",
                [("keep-editing", "Keep editing", "primary"), ("save-anyway", "Save anyway", "error")]))
            if choice != "save-anyway":
                return False
            warning = f"invalid: {len(c.problems)} problem(s); saved on your choice"
        try:
            on_disk = path.read_text() if path.exists() else None
        except OSError as e:
            self.notify(f"cannot read {path}: {e.strerror}", severity="error")
            return False
        if on_disk == self.text:
            self._saved(path, written=False)
            return True
        diff = unified_diff(on_disk or "", self.text, path.name) if on_disk is not None else ""
        if not await self.app.push_screen_wait(DiffDialog(str(path), diff, warning)):
            return False
        try:
            _write_atomic(path, self.text)
        except OSError as e:
            self.notify(f"cannot write {path}: {e.strerror}. Try Save as (F3) to another folder.",
                        severity="error", timeout=8)
            return False
        self._saved(path, written=True)
        return True

    def _saved(self, path: Path, written: bool) -> None:
        self.path, self.disk_text = path, self.text
        self.notify(f"saved {path}" if written else f"{path} is up to date", timeout=3)
        self._show_checked()

    # -- leaving ----------------------------------------------------------------
    def action_run(self) -> None:
        self._run_worker()

    @work(exclusive=True, group="editor-flow")
    async def _run_worker(self) -> None:
        self._flush_check()
        c = self.checked
        if not c.ok:
            self.notify(f"fix {len(c.problems)} problem(s) before running; first: {c.problems[0].message}",
                        severity="error", timeout=6)
            return
        if self.path is None or self.dirty or not self.path.exists():
            path = self.path
            if path is None:
                value = await self.app.push_screen_wait(
                    PathDialog("Save before running", "configs/my.yaml", "The run reads the file; save it to:"))
                if not value:
                    return
                path = Path(value).expanduser()
            if not await self.save(path):
                return
        self.post_message(self.RunRequested(self.path))

    def action_close(self) -> None:
        """Esc: out of the find first, then out of the editor."""
        if self._leave_find():
            return
        self.request_close()

    def request_close(self) -> None:
        """Leave, asking first about unsaved changes (ctrl+q comes here directly)."""
        self._close_worker()

    @work(exclusive=True, group="editor-flow")
    async def _close_worker(self) -> None:
        if self.dirty:
            choice = await self.app.push_screen_wait(ConfirmDialog(
                "Unsaved changes", f"{self.display_name} has changes that are not saved.",
                [("keep-editing", "Keep editing", "primary"), ("save", "Save", "default"),
                 ("discard", "Discard changes", "error")]))
            if choice == "save":
                if self.path is None:
                    value = await self.app.push_screen_wait(PathDialog("Save as", "configs/my.yaml"))
                    if not value:
                        return
                    self.path = Path(value).expanduser()
                if not await self.save(self.path):
                    return
            elif choice != "discard":
                return
        self.post_message(self.Closed())


def _write_atomic(path: Path, text: str) -> None:
    """Temp file beside the target, then rename: a crash never leaves half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
