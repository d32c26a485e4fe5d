"""The app behind `danlu` (launcher) and `danlu edit CONFIG` (editor).

Thin: it shows the launcher or the editor and turns their requests into an
Outcome that the CLI acts on once the terminal is back (`danlu run CONFIG`,
`danlu run --resume RUN_DIR`), so training never starts inside this app.
Build it with `create_launcher_app` or `create_editor_app`; the CLI and the
tests share these factories.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from danlu.engine.config.schema import PACKAGED_CONFIGS

from .run_index import pid_alive
from .screens.editor import EditorScreen
from .screens.launcher import LauncherScreen
from .widgets.key_footer import binding_commands
from .widgets.lr_preview import PreviewFn


@dataclass(frozen=True)
class Outcome:
    """What to do after the app exits: train a config, or resume a run directory."""

    action: Literal["run", "resume", "attach"]
    path: str


def load_for_edit(name: str | Path, cwd: Path | None = None) -> tuple[Path, str, str]:
    """(path to save to, text to edit, text on disk) for a config a person named.

    An existing file is edited in place. A packaged config (`default`) is copied:
    its edits go to ./configs/<name>.yaml, never into the installed package.
    A new path starts from the packaged default.
    """
    cwd = cwd or Path.cwd()
    p = Path(name).expanduser()
    for cand in (p, PACKAGED_CONFIGS / p.name, PACKAGED_CONFIGS / f"{p.name}.yaml"):
        if not cand.is_file():
            continue
        if not _packaged(cand, cwd):
            text = cand.read_text()
            return cand, text, text
        target = Path("configs") / cand.name
        if (cwd / target).is_file():
            text = (cwd / target).read_text()
            return target, text, text
        return target, cand.read_text(), ""
    if p.suffix not in (".yaml", ".yml"):
        p = p.with_suffix(".yaml")
    return p, (PACKAGED_CONFIGS / "default.yaml").read_text(), ""


def _packaged(p: Path, cwd: Path) -> bool:
    """A file of the installed package (not the working tree it was installed from)."""
    try:
        folder = p.resolve().parent
        return folder == PACKAGED_CONFIGS.resolve() and folder != (cwd / "configs").resolve()
    except OSError:
        return False


class EditorApp(App[Outcome | None]):
    """Routes the screens' requests: run and resume exit with an Outcome, edit opens the editor."""

    CSS_PATH = [Path(__file__).parent / "app.tcss", Path(__file__).parent / "editor.tcss"]
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app-quit")]

    def __init__(self, *, edit: str | Path | None = None, cwd: Path | None = None,
                 clock: Callable[[], float] = time.time, alive: Callable[[int], bool] = pid_alive,
                 preview_fn: PreviewFn | None = None, view: str = "form"):
        super().__init__()
        self.title = "danlu"
        self.edit_target = edit
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.clock, self.alive, self.preview_fn, self.view = clock, alive, preview_fn, view

    def on_mount(self) -> None:
        if self.edit_target is not None:
            self.open_editor(self.edit_target)
        else:
            self.push_screen(LauncherScreen(self.cwd, clock=self.clock, alive=self.alive))

    def open_editor(self, target: str | Path, view: str | None = None) -> None:
        path, text, disk = load_for_edit(target, self.cwd)
        self.push_screen(EditorScreen(path, text, disk, preview_fn=self.preview_fn, view=view or self.view))

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        if not isinstance(screen, ModalScreen):  # the keys of the editor or the launcher
            yield from binding_commands(screen)

    # -- quitting goes through the editor, so unsaved changes are never lost silently
    async def action_quit(self) -> None:
        if isinstance(self.screen, EditorScreen):
            self.screen.request_close()
        else:
            self.exit(None)

    # -- requests from the screens ---------------------------------------------
    @on(EditorScreen.RunRequested)
    def _run_edited(self, event: EditorScreen.RunRequested) -> None:
        self.exit(Outcome("run", str(event.path)))

    @on(EditorScreen.Closed)
    def _editor_closed(self) -> None:
        if len(self.screen_stack) > 2:  # the launcher is underneath
            self.pop_screen()
        else:
            self.exit(None)

    @on(LauncherScreen.RunRequested)
    def _run(self, event: LauncherScreen.RunRequested) -> None:
        self.exit(Outcome("run", str(event.path)))

    @on(LauncherScreen.ResumeRequested)
    def _resume(self, event: LauncherScreen.ResumeRequested) -> None:
        self.exit(Outcome("resume", str(event.run_dir)))

    @on(LauncherScreen.AttachRequested)
    def _attach(self, event: LauncherScreen.AttachRequested) -> None:
        self.exit(Outcome("attach", str(event.run_dir)))

    @on(LauncherScreen.EditRequested)
    def _edit(self, event: LauncherScreen.EditRequested) -> None:
        self.open_editor(event.path, event.view)


def create_editor_app(config: str | Path, *, preview_fn: PreviewFn | None = None, view: str = "form") -> EditorApp:
    """`danlu edit CONFIG`."""
    return EditorApp(edit=config, preview_fn=preview_fn, view=view)


def create_launcher_app(cwd: Path | None = None, *, clock: Callable[[], float] = time.time,
                        alive: Callable[[int], bool] = pid_alive,
                        preview_fn: PreviewFn | None = None) -> EditorApp:
    """`danlu` with no arguments."""
    return EditorApp(cwd=cwd, clock=clock, alive=alive, preview_fn=preview_fn)
