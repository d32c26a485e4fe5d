"""How `danlu run` can hand its terminal back while the run goes on (`d`, or a lost terminal).

Before torch loads, `danlu run` forks. The child starts a session of its own (os.setsid) and
runs the dashboard and the engine thread on the inherited terminal, as before: it draws and
reads every key (raw mode: Ctrl-C is a key). Not being in the terminal's session, it gets
neither SIGWINCH nor SIGHUP from it. The parent stays the terminal's foreground job and
waits: it ignores SIGINT, forwards SIGWINCH (a resize), SIGTERM and SIGHUP to the child, and
leaves with the child's exit code, or with 0 when the child says it has detached (a line on
a pipe). So to detach, the child closes the app (restoring the terminal), points its
stdout and stderr at output.log in the run directory, and writes that line: the shell
prompt comes back and the training process goes on, still serving its control socket.

A terminal can also go away under the run (a dropped SSH session): the parent gets SIGHUP
and passes it on, or the parent itself is gone (the child then finds it has been re-parented);
the child treats both as a hangup (run.on_hangup: continue, or stop: save and exit).
No torch, no Textual.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from pathlib import Path

DETACHED = b"detached "


class Link:
    """The child's end: tell the waiting parent that the terminal is free."""

    def __init__(self, fd: int, parent: int):
        self.fd, self.parent = fd, parent
        self.told = False

    def parent_gone(self) -> bool:
        return os.getppid() != self.parent

    def detached(self, run_dir: str) -> None:
        if self.told:
            return
        self.told = True
        try:
            os.write(self.fd, DETACHED + run_dir.encode() + b"\n")
            os.close(self.fd)
        except OSError:
            pass  # the parent is gone already (a hangup)


def supported() -> bool:
    """Fork where it is safe and useful: POSIX, a terminal on both ends, not turned off."""
    return (hasattr(os, "fork") and hasattr(os, "setsid") and sys.stdin.isatty() and sys.stdout.isatty()
            and os.environ.get("DANLU_NO_DETACH") != "1" and "torch" not in sys.modules)


def fork() -> Link | None:
    """In the child: a Link. The parent never returns from here: it waits and exits (see the module)."""
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        return Link(write_fd, parent)
    os.close(write_fd)
    os._exit(_wait(pid, read_fd))


def _wait(child: int, read_fd: int) -> int:
    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    buf = b""
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done == child:
            return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)
        try:
            ready = select.select([read_fd], [], [], 0.2)[0]
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = os.read(read_fd, 4096)
        except OSError:
            data = b""
        if not data:  # the child closed its end without a word: wait for its exit
            os.close(read_fd)
            _, status = os.waitpid(child, 0)
            return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)
        buf += data
        if buf.startswith(DETACHED) and buf.endswith(b"\n"):
            run_dir = _shown(buf[len(DETACHED):].decode().strip())
            _say(f"danlu: detached; the run goes on in the background (pid {child}), its output in "
                 f"{Path(run_dir) / 'output.log'}.\nBack to it: danlu attach {run_dir}")
            return 0


def _shown(path: str) -> str:
    """A run directory as a person types it: relative to here when it is below here."""
    rel = os.path.relpath(path) if path else path
    return rel if path and not rel.startswith("..") else path


def _say(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError:
        pass


def to_log(run_dir: str | None) -> None:
    """Point stdout and stderr at the run's output.log (or nowhere) and stdin at nothing."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    target = null
    if run_dir:
        try:
            target = os.open(str(Path(run_dir) / "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            target = null
    for fd in (1, 2):
        os.dup2(target, fd)
    if target != null:
        os.close(target)
    os.close(null)


def silence() -> None:
    """The terminal is gone: writes to it would fail (EIO) or block; send them nowhere at once."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def watch_parent(link: Link, on_gone, stop: threading.Event) -> threading.Thread:
    """Call `on_gone()` once if the parent disappears (killed with its terminal) before `stop` is set."""
    def loop():
        while not stop.wait(0.5):
            if link.parent_gone() and not link.told:
                on_gone()
                return

    t = threading.Thread(target=loop, name="danlu-parent-watch", daemon=True)
    t.start()
    return t
