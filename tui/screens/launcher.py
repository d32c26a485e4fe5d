"""`danlu` with no arguments: the configs to run or edit, live runs to attach to, and recent runs to resume.

Every config listed is checked the way `danlu run` would check it (in a thread, cached by
mtime); a broken one is marked in the list, and Enter on it shows why instead of exiting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Select, Static
from textual.worker import get_current_worker

from danlu.engine.control.events import LIVE_STATES

from ..attach import clean_socket
from ..format import num
from ..run_index import (ConfigCheck, ConfigEntry, RunEntry, age, check_config, fresh, pid_alive, scan_configs,
                         scan_runs)

REFRESH_S = 2.0  # the run list follows running trainers by itself
CHECK_W = 24     # the Check column: "✗ YAML error, line 123" fits


class LauncherScreen(Screen):
    """Two tables; Enter runs a config, attaches to a live run or resumes another, e edits, n makes a new config."""

    BINDINGS = [
        Binding("enter", "open", "Run/Attach/Resume", id="launcher-open", priority=False),
        Binding("e", "edit", "Edit", id="launcher-edit"),
        Binding("n", "new", "New config", id="launcher-new"),
        Binding("r", "refresh", "Refresh", id="launcher-refresh"),
        Binding("q", "app.quit", "Quit", id="launcher-quit"),
    ]

    class RunRequested(Message):
        def __init__(self, path: Path):
            super().__init__()
            self.path = path

    class ResumeRequested(Message):
        def __init__(self, run_dir: Path):
            super().__init__()
            self.run_dir = run_dir

    class AttachRequested(Message):
        def __init__(self, run_dir: Path):
            super().__init__()
            self.run_dir = run_dir

    class EditRequested(Message):
        def __init__(self, path: Path, view: str | None = None):
            super().__init__()
            self.path = path
            self.view = view  # "raw" for a file whose YAML does not parse; None: the editor's default

    def __init__(self, cwd: Path | None = None, *, clock: Callable[[], float] = time.time,
                 alive: Callable[[int], bool] = pid_alive):
        super().__init__(id="launcher")
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.clock, self.alive = clock, alive
        self.configs: list[ConfigEntry] = []
        self.runs: list[RunEntry] = []
        self.checks: dict[Path, ConfigCheck] = {}  # by the path as listed; missing while being checked

    def compose(self) -> ComposeResult:
        yield Static("danlu · 丹炉  —  Enter: run, attach or resume · e: edit · n: new config",
                     id="launcher-title")
        with Vertical(id="configs-box") as box:
            box.border_title = "Configs"
            yield DataTable(id="configs", cursor_type="row", zebra_stripes=True)
        with Vertical(id="runs-box") as box:
            box.border_title = "Recent runs (./runs)"
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        configs = self.query_one("#configs", DataTable)
        configs.add_columns("Config", "Where")
        # a fixed width: the checks arrive after the first draw, and the list must not jump then
        configs.add_column("Check", width=CHECK_W)
        configs.add_column("About")
        self.query_one("#runs", DataTable).add_columns("Run", "State", "Step", "Best val loss", "Updated")
        self.refresh_lists()
        self.set_interval(REFRESH_S, self.refresh_runs)
        self.query_one("#configs", DataTable).focus()

    def on_screen_resume(self) -> None:
        self.refresh_lists()  # back from the editor: a config may be new

    # -- lists -------------------------------------------------------------------
    def refresh_lists(self) -> None:
        self.refresh_configs()
        self.refresh_runs()

    def refresh_configs(self) -> None:
        self.configs = scan_configs(self.cwd)
        self._show_configs()
        self._check_configs(list(self.configs))

    def _show_configs(self) -> None:
        table = self.query_one("#configs", DataTable)
        _refill(table, [(str(c.path), (c.name, "packaged" if c.packaged else "./configs", self._check_cell(c),
                                       c.about)) for c in self.configs])

    def _file(self, entry: ConfigEntry) -> Path:
        return entry.path if entry.path.is_absolute() else self.cwd / entry.path

    def _check_cell(self, entry: ConfigEntry) -> Text:
        result = self.checks.get(entry.path)
        colours = self.app.theme_variables
        if result is None:
            return Text("…", style="dim")
        if result.ok:
            return Text("ok", style=colours.get("text-success", "green"))
        summary = result.summary if len(result.summary) <= CHECK_W - 2 else result.summary[:CHECK_W - 3] + "…"
        return Text(f"✗ {summary}", style=f"bold {colours.get('text-error', 'red')}")

    @work(thread=True, exclusive=True, group="launcher-check")
    def _check_configs(self, entries: list[ConfigEntry]) -> None:
        """Check every listed config off the UI thread (cached by mtime: a refresh re-reads only edits)."""
        results = {e.path: check_config(self._file(e)) for e in entries}
        if get_current_worker().is_cancelled:
            return  # a newer check (refresh) or the app's exit took over
        self.post_message(self.Checked(results))  # thread-safe, never waits for the UI

    class Checked(Message):
        """The configs' checks, from the worker thread."""

        def __init__(self, results: dict[Path, ConfigCheck]):
            super().__init__()
            self.results = results

    def on_launcher_screen_checked(self, message: Checked) -> None:
        self.checks.update(message.results)
        self._show_configs()

    @property
    def checks_done(self) -> bool:
        return all(c.path in self.checks for c in self.configs)

    def refresh_runs(self) -> None:
        # live runs first (Enter attaches to them), then the rest, most recently updated first
        self.runs = [fresh(r) for r in scan_runs(self.cwd / "runs", self.alive, live_first=True)]
        for r in self.runs:
            if r.state == "crashed":
                clean_socket(r.dir)
        now = self.clock()
        table = self.query_one("#runs", DataTable)
        rows = []
        for r in self.runs:
            step = "–" if r.step is None else (f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step))
            best = num(r.best_val_loss) if r.best_val_loss is not None else "–"
            when = f"{age(now - r.updated)} ago" if r.updated is not None else "–"
            rows.append((str(r.dir), (r.name, r.state, step, best, when)))
        _refill(table, rows)

    # -- actions -------------------------------------------------------------------
    def _selected(self) -> ConfigEntry | RunEntry | None:
        table = self.focused if isinstance(self.focused, DataTable) else self.query_one("#configs", DataTable)
        items = self.configs if table.id == "configs" else self.runs
        row = table.cursor_row
        return items[row] if 0 <= row < len(items) and table.row_count else None

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        item = self._selected()
        if isinstance(item, ConfigEntry):
            result = check_config(self._file(item))  # now: the file may have changed since the list
            if result != self.checks.get(item.path):
                self.checks[item.path] = result
                self._show_configs()
            if not result.ok:
                self._show_problems(item, result)
                return
            self.post_message(self.RunRequested(item.path))
        elif isinstance(item, RunEntry):
            if item.state in LIVE_STATES:  # its process is alive: watch it, never train it twice
                self.post_message(self.AttachRequested(item.dir))
            else:
                self.post_message(self.ResumeRequested(item.dir))

    def _show_problems(self, item: ConfigEntry, result: ConfigCheck) -> None:
        def chosen(choice: str | None) -> None:
            if choice == "edit":
                self._edit(item)

        self.app.push_screen(ConfigProblemsDialog(str(item.path), result, packaged=item.packaged), chosen)

    def _edit(self, item: ConfigEntry) -> None:
        result = self.checks.get(item.path)
        self.post_message(self.EditRequested(item.path, "raw" if result is not None and result.yaml_error else None))

    def action_edit(self) -> None:
        item = self._selected()
        if isinstance(item, ConfigEntry):
            self._edit(item)
        elif isinstance(item, RunEntry):
            self.notify("a run resumes with its own config.yaml; to change hot settings, open it and press c "
                        "in the dashboard, or edit a config and start a new run", timeout=6)

    def action_new(self) -> None:
        templates = [c for c in scan_configs(self.cwd)]

        def made(path: Path | None) -> None:
            if path is not None:
                self.refresh_configs()
                self.post_message(self.EditRequested(path))

        self.app.push_screen(NewConfigDialog(self.cwd, templates), made)

    def action_refresh(self) -> None:
        self.refresh_lists()


def _refill(table: DataTable, rows: list[tuple[str, tuple]]) -> None:
    """Replace the rows, keeping the cursor on the same key when it is still there."""
    keep = None
    if table.row_count:
        try:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - a stale cursor is no reason to fail a refresh
            keep = None
    current = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
    if current == [k for k, _ in rows]:
        for i, (_, cells) in enumerate(rows):
            for j, cell in enumerate(cells):
                if table.get_cell_at((i, j)) != cell:
                    table.update_cell_at((i, j), cell, update_width=True)
        return
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if keep is not None:
        for i, (key, _) in enumerate(rows):
            if key == keep:
                table.move_cursor(row=i)
                break


class ConfigProblemsDialog(ModalScreen[str | None]):
    """Why a config cannot run, inside the launcher; returns "edit" or None (the launcher stays)."""

    BINDINGS = [
        Binding("e", "edit", "Edit", id="problems-edit"),
        Binding("escape", "cancel", "Close", id="problems-close"),
    ]

    def __init__(self, path: str, result: ConfigCheck, packaged: bool = False):
        super().__init__(id="config-problems-dialog")
        self.path, self.result, self.packaged = path, result, packaged

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            n = len(self.result.problems)
            box.border_title = f"{Path(self.path).name} cannot run"
            yield Static(f"danlu run {self.path} would stop with {n} problem{'s' * (n != 1)}:", classes="hint",
                         markup=False)
            with VerticalScroll(id="problems-body"):
                yield Static("\n".join(f"✗ {p}" for p in self.result.problems), classes="error",
                             id="problems-text", markup=False)
            where = "a copy in ./configs" if self.packaged else "it"
            yield Static(f"e opens {where} in the editor" + (" (raw YAML view)" if self.result.yaml_error else "")
                         + ", where every problem is shown at its line.", classes="hint", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Edit (e)", variant="primary", id="problems-edit")
                yield Button("Close", id="problems-close")

    def on_mount(self) -> None:
        self.query_one("#problems-edit", Button).focus()

    @on(Button.Pressed, "#problems-edit")
    def action_edit(self) -> None:
        self.dismiss("edit")

    @on(Button.Pressed, "#problems-close")
    def action_cancel(self) -> None:
        self.dismiss(None)


class NewConfigDialog(ModalScreen[Path | None]):
    """A template and a file name; writes ./configs/NAME.yaml and returns its path."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="new-cancel")]

    def __init__(self, cwd: Path, templates: list[ConfigEntry]):
        super().__init__(id="new-config-dialog")
        self.cwd, self.templates = cwd, templates

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "New config"
            yield Static("Start from:", classes="hint")
            options = [(f"{t.name}{' (packaged)' if t.packaged else ''}", i) for i, t in enumerate(self.templates)]
            default = next((i for i, t in enumerate(self.templates) if t.name == "default"), 0)
            yield Select(options, value=default, allow_blank=False, id="new-template")
            yield Static("File name (written into ./configs):", classes="hint")
            yield Input(placeholder="my-experiment", id="new-name")
            yield Static("", classes="error", id="new-error")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="new-create")
                yield Button("Cancel", id="new-cancel")

    def on_mount(self) -> None:
        self.query_one("#new-name", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#new-create")
    def _create(self) -> None:
        error = self.query_one("#new-error", Static)
        name = self.query_one("#new-name", Input).value.strip()
        if not name or "/" in name or name.startswith("."):
            error.update("give a plain file name, like my-experiment")
            return
        if not name.endswith((".yaml", ".yml")):
            name += ".yaml"
        target = self.cwd / "configs" / name
        if target.exists():
            error.update(f"configs/{name} exists already; pick another name or edit it from the list")
            return
        template = self.templates[self.query_one("#new-template", Select).value]
        source = template.path if template.path.is_absolute() else self.cwd / template.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text())
        except OSError as e:
            error.update(f"cannot write {target}: {e.strerror}")
            return
        self.dismiss(Path("configs") / name)

    @on(Button.Pressed, "#new-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
