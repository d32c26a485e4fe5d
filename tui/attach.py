"""`danlu attach [RUN]`: the dashboard of a run that lives in another process, over its control socket.

RUN is a run directory or the start of a run's name under the runs folder; without it, the
one live run there (a picker when there are several). The dashboard is the one `danlu run`
opens (tui/app.py) on a RemoteChannel (engine/control/socket_client.py) instead of the
in-process Channel; its history comes from the run's files (tui/history.py), cut where the
server's hello says the live stream starts. Imports no torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from danlu.engine.control.events import LIVE_STATES
from danlu.engine.errors import UserError

from .run_index import RunEntry, scan_runs


def default_root() -> Path:
    """The runs folder: ./runs, or where the packaged default config puts runs (run.out_dir)."""
    if Path("runs").is_dir():
        return Path("runs")
    try:
        from danlu.engine.config.files import load_config
        return Path(load_config(None, []).run.out_dir)
    except Exception:  # noqa: BLE001 - a broken default config must not stop an attach
        return Path("runs")


def live_runs(root: Path) -> list[RunEntry]:
    """Runs under `root` whose process is alive and whose socket answers; stale sockets are removed."""
    from danlu.engine.control.socket_client import find_socket
    runs = scan_runs(root)
    for r in runs:
        if r.state == "crashed":
            clean_socket(r.dir)
    return [r for r in runs if r.state in LIVE_STATES and find_socket(r.dir) is not None]


def clean_socket(run_dir: Path) -> None:
    """A run whose process is gone may have left its control socket behind: remove it (stale)."""
    from danlu.engine.control.protocol import recorded_socket
    if recorded_socket(run_dir) is not None:
        from danlu.engine.control.socket_client import find_socket
        find_socket(run_dir)  # removes a socket nobody answers on whose run's process is dead


def resolve(target: str | None, root: Path) -> Path | None:
    """The run directory to attach to; None: several are live and the user must pick."""
    if target is not None:
        p = Path(target)
        if p.is_dir() and ((p / "state.json").is_file() or (p / "config.yaml").is_file()):
            return p
        if os.sep in target.rstrip(os.sep):  # runs/default: a name prefix in that folder
            root, target = p.parent, p.name
        matches = [r for r in scan_runs(root) if r.name.startswith(target)] if root.is_dir() else []
        if not matches:
            if not root.is_dir():
                raise UserError(f"no run directory {target!r}, and no folder {root.absolute()} to look for a run "
                                "name in. Give a run directory, or --runs FOLDER.")
            raise UserError(f"no run directory {target!r}, and no run in {root.absolute()} whose name starts with "
                            f"it. `danlu ls {root}` lists the runs.")
        live = [r for r in matches if r.state in LIVE_STATES]
        if len(matches) == 1 or len(live) == 1:
            return (live or matches)[0].dir
        names = ", ".join(r.name for r in (live or matches)[:6])
        raise UserError(f"{target!r} matches several runs ({names}); give more of the name or the directory.")
    live = live_runs(root)
    if not live:
        where = root.absolute() if root.is_dir() else f"{root.absolute()} (no such folder; --runs FOLDER looks elsewhere)"
        raise UserError(f"no live run in {where}. Start one with `danlu run`, or name one: danlu attach RUN_DIR.")
    if len(live) == 1:
        return live[0].dir
    return None


def attach(target: str | None = None, root: str | None = None) -> int:
    from danlu.engine.control.socket_client import NotLive, ProtocolError, RemoteChannel, connect
    root_path = Path(root) if root else default_root()
    run_dir = resolve(target, root_path)
    if run_dir is None:
        if not sys.stdout.isatty():
            names = "\n  ".join(str(r.dir) for r in live_runs(root_path))
            raise UserError(f"several runs are live under {root_path}/; name one:\n  {names}")
        run_dir = pick(live_runs(root_path))
        if run_dir is None:
            return 0
    try:
        client = connect(run_dir, name=f"attach pid {os.getpid()}")
    except NotLive as e:
        raise UserError(f"{e}. Its files are still there: `danlu run --resume {run_dir}` continues it.") from None
    except ProtocolError as e:
        raise UserError(str(e)) from None
    from .app import create_app
    channel = RemoteChannel(client)
    name = Path(client.hello.get("run_dir") or run_dir).name
    app = create_app(channel, title=f"danlu · {name} (attached)", remote=client.hello)
    try:
        app.run()
    finally:
        channel.close()
    app.pump.tick()  # what arrived after the last frame (the run's last status)
    state = app.pump.state
    if app.detached:
        print(f"danlu: detached; {name} goes on (pid {client.hello.get('pid')}). Back: danlu attach {run_dir}")
    elif state.final:
        print(f"danlu: {name} {state.state} at step {state.step}")
    elif channel.closed:
        print(f"danlu: the connection ended: {channel.closed}", file=sys.stderr)
        return 1
    return app.return_code or 0


def pick(runs: list[RunEntry]) -> Path | None:
    """A small picker: the live runs, Enter attaches, Esc leaves."""
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, OptionList
    from textual.widgets.option_list import Option

    from .run_index import age

    class Picker(App[Path]):
        BINDINGS = [("escape", "quit_picker", "Leave")]

        def compose(self) -> ComposeResult:
            import time
            now = time.time()
            options = [Option(f"{r.name}  {r.state}  step {r.step or 0}/{r.total_steps or '?'}  "
                              f"updated {age(now - r.updated if r.updated else None)} ago  pid {r.pid}", id=str(i))
                       for i, r in enumerate(runs)]
            ol = OptionList(*options)
            ol.border_title = "Live runs: Enter attaches"
            yield ol
            yield Footer()

        def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
            self.exit(runs[int(event.option.id)].dir)

        def action_quit_picker(self) -> None:
            self.exit(None)

    return Picker().run()
