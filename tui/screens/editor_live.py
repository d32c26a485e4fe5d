"""The editor on a running config (dashboard key c): hot changes become commands, cold ones wait.

Hot settings (lr, weight_decay, momentum/betas, grad_clip, the intervals) are
sent through the dashboard's pump as set_lr / set_hparam when you apply. Cold
settings (batch size, model, data, ...) need a restart: ctrl+r (after a confirm)
dismisses with a RestartRequest, and the app stops the run with a save and starts
a new run from that checkpoint with the edited config (DanluApp.restart_with).
Save as (F3) keeps the edited config in a file instead.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work

from textual.binding import Binding

from danlu.engine.control import events as ev
from danlu.engine.config.schema import from_dict
from danlu.engine.config.files import dump_yaml
from danlu.engine.errors import ConfigError

from danlu.engine.config.hot import BY_PATH, HOT

MAX_LR = float(HOT["lr"].knob.max)  # the config's bound: a scaled LR past it is not offered

from ..editor_model import changed_paths
from .editor import EditorScreen
from .editor_dialogs import ConfirmDialog


@dataclass
class RestartRequest:
    """What the live editor hands back for "restart with changes": the edited config and a summary."""

    config: Any                 # the edited, validated Config
    changes: list[str]          # "data.batch_size 64 → 32", one per changed key


def _value(cfg: Any, path: str) -> Any:
    section, key = path.split(".", 1)
    obj = getattr(cfg, section)
    if hasattr(obj, key):
        return getattr(obj, key)
    return (getattr(obj, "args", None) or {}).get(key)


def change_lines(old: Any, new: Any) -> list[str]:
    """Every changed key as "path old → new"."""
    return [f"{p} {_value(old, p)} → {_value(new, p)}" for p in changed_paths(old, new)]


def lr_scaling(old: Any, new: Any) -> tuple[float, float] | None:
    """(factor, scaled lr) when the effective batch (batch_size x grad_accum) changed and the LR
    did not: the linear scaling rule (Goyal et al. 2017). None when there is nothing to offer."""
    b0 = old.data.batch_size * old.train.grad_accum
    b1 = new.data.batch_size * new.train.grad_accum
    if b0 == b1 or b0 <= 0 or new.optim.lr != old.optim.lr:
        return None
    k = b1 / b0
    lr = float(f"{new.optim.lr * k:.4g}")
    if not lr <= MAX_LR:
        return None
    return k, lr


def live_changes(old: Any, new: Any) -> tuple[list[ev.Command], list[str]]:
    """(commands for the hot changes, dotted keys of the cold ones) between two Configs."""
    commands, cold = [], []
    for path in changed_paths(old, new):
        section, key = path.split(".", 1)
        if path not in BY_PATH:
            cold.append(path)
        elif path == "optim.lr":
            # relative, so a schedule mid-way keeps its shape at the new level
            commands.append(ev.set_lr(factor=new.optim.lr / old.optim.lr))
        else:
            value = getattr(getattr(new, section), key, None)
            if value is None and section == "optim":
                value = new.optim.args.get(key)
            commands.append(ev.set_hparam(BY_PATH[path].name, value))
    return commands, cold


class LiveEditorScreen(EditorScreen):
    """Dismisses with the list of commands to send (empty when nothing hot changed)."""

    CSS_PATH = Path(__file__).parent.parent / "editor.tcss"  # the dashboard app does not load it
    inherit_bindings = False
    BINDINGS = [
        Binding("f2,ctrl+t", "toggle_view", "Form/YAML", priority=True, id="live-toggle"),
        Binding("ctrl+f", "find", "Find", priority=True, id="live-find",
                tooltip="Find a key by part of its name (lr, clip, warm...)"),
        Binding("ctrl+down", "next_section", "Section", key_display="^↑↓", priority=True, id="live-next-section",
                tooltip="Next section (ctrl+up: previous)"),
        Binding("ctrl+up", "prev_section", "Previous section", show=False, priority=True, id="live-prev-section"),
        Binding("ctrl+s", "apply", "Apply hot changes", priority=True, id="live-apply"),
        Binding("ctrl+r", "restart", "Restart with changes", priority=True, id="live-restart"),
        Binding("f3", "save_as", "Save as", priority=True, id="live-save-as"),
        Binding("f8", "next_problem", "Next problem", priority=True, id="live-next-problem"),
        Binding("escape", "close", "Close", id="live-close"),
    ]
    FOOTER_PRIORITY = ("live-close", "live-apply", "live-restart", "live-toggle", "live-find",
                       "live-next-section", "live-next-problem", "live-save-as")

    def __init__(self, config: dict[str, Any], *, run_dir: str | None = None, **kwargs):
        text = dump_yaml(config)
        super().__init__(None, text, text, **kwargs)
        self.run_name = str((config.get("run") or {}).get("name") or "")
        self.run_dir = run_dir
        try:
            self.original = from_dict(config)
        except ConfigError:
            self.original = None

    @property
    def display_name(self) -> str:
        """'run default · runs/default-20260101-000000': the run whose config this is."""
        where = _short_dir(self.run_dir) if self.run_dir else ""
        return "run " + " · ".join(p for p in (self.run_name or "(unnamed)", where) if p)

    def _show_checked(self) -> None:
        super()._show_checked()
        status = self.query_one("#editor-status")
        if self.original is None or self.checked.config is None:
            return
        commands, cold = live_changes(self.original, self.checked.config)
        hot = ", ".join(c.args.get("name", c.kind) for c in commands) or "none"
        note = f"{self.display_name}{' ● modified' if self.dirty else ''}  ·  hot: {hot}"
        if cold:
            note += f" · needs a restart: {', '.join(cold)} (ctrl+r)"
        status.update(note)

    def action_apply(self) -> None:
        self._flush_check()
        if self.checked.config is None or self.original is None:
            self.notify(f"fix {len(self.checked.problems)} problem(s) first", severity="error")
            return
        commands, cold = live_changes(self.original, self.checked.config)
        if cold:
            self.notify(f"not applied: {', '.join(cold)} need a restart with changes (ctrl+r), "
                        "or Save as (F3) keeps them for the next run.", severity="warning", timeout=10)
        if not commands:
            if not cold:
                self.notify("no hot changes to apply")
            return
        self.dismiss(commands)

    def action_restart(self) -> None:
        """Cold changes: confirm, then hand the edited config back for a restart from a checkpoint."""
        self._flush_check()
        if self.checked.config is None or self.original is None:
            self.notify(f"fix {len(self.checked.problems)} problem(s) first", severity="error")
            return
        _, cold = live_changes(self.original, self.checked.config)
        if not cold:
            self.notify("nothing here needs a restart; ctrl+s applies hot changes to the running run")
            return
        new = self.checked.config
        changes = change_lines(self.original, new)
        message = ("Stop this run with a checkpoint and start a new run from it with:\n  "
                   + "\n  ".join(changes)
                   + "\n\nWeights always carry over; the optimizer state too unless the optimizer changed. "
                     "The new run gets its own run directory, which names this one as its parent.")
        buttons = [("cancel", "Cancel", "default"), ("restart", "Restart", "warning")]
        scaling = lr_scaling(self.original, new)
        if scaling is not None:
            k, lr = scaling
            old = self.original
            message += (f"\n\nThe effective batch goes from {old.data.batch_size * old.train.grad_accum} to "
                        f"{new.data.batch_size * new.train.grad_accum} (x{k:g}). The linear scaling rule "
                        f"(Goyal et al. 2017) scales the LR by the same factor: optim.lr {old.optim.lr:g} → "
                        f"{lr:g}. Only if you choose it; plain Restart keeps the LR.")
            buttons.insert(1, ("restart-scaled", f"Restart, lr x{k:g}", "primary"))

        def chosen(choice: str | None) -> None:
            if choice == "restart":
                self.dismiss(RestartRequest(new, changes))
            elif choice == "restart-scaled" and scaling is not None:
                scaled = copy.deepcopy(new)
                scaled.optim.lr = scaling[1]
                self.dismiss(RestartRequest(scaled, changes + [
                    f"optim.lr {new.optim.lr} → {scaling[1]} (linear scaling, x{scaling[0]:g})"]))

        self.app.push_screen(ConfirmDialog("Restart with changes", message, buttons,
                                           id="restart-dialog"), chosen)

    def action_run(self) -> None:
        self.notify("the run is already going; apply hot changes with ctrl+s", severity="warning")

    @work(exclusive=True, group="editor-flow")
    async def _close_worker(self) -> None:
        """Back to the dashboard; edits not applied are dropped only on an explicit choice."""
        if self.dirty:
            choice = await self.app.push_screen_wait(ConfirmDialog(
                "Discard your edits?",
                f"Edits to the config of {self.display_name} are not applied yet.\n\n"
                "ctrl+s applies the hot ones to the running run; ctrl+r restarts with the cold ones.",
                [("keep-editing", "Keep editing", "primary"), ("discard", "Discard", "error")],
                id="live-discard-dialog"))
            if choice != "discard":
                return
        self.dismiss([])


def _short_dir(run_dir: str) -> str:
    """The run directory relative to the working directory when it is inside it."""
    try:
        rel = os.path.relpath(run_dir)
    except ValueError:  # another drive (Windows)
        return run_dir
    return run_dir if rel.startswith("..") else rel
