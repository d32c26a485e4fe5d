"""When the terminal under a run goes away: keep training, output into the run directory.

A dropped SSH session sends SIGHUP, and every later write to the terminal fails (EIO). With
`run.on_hangup: continue` (the default) the run goes on: `redirect_output` points the process's
stdout and stderr (file descriptors 1 and 2, so Python's prints and anything native) at
`output.log` in the run directory, and `EngineThread.note_hangup` records it in events.jsonl.
With `stop` the run saves and ends, exit 0 (what SIGTERM does). Used by `--headless`; the
dashboard records the hangup the same way (EngineThread.note_hangup); its output moves with tui/detach.py.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

OUTPUT_LOG = "output.log"


def redirect_output(run_dir: str | os.PathLike) -> Path:
    """Send fds 1 and 2 to <run_dir>/output.log (appended); returns its path. SIGHUP is ignored from now on."""
    path = Path(run_dir) / OUTPUT_LOG
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # what was buffered for the lost terminal is lost with it
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return path


def continue_after_hangup(thread) -> bool:
    """Redirect the output and record the hangup, once the run directory exists; False until then."""
    trainer = thread.trainer
    run_dir = getattr(trainer, "run_dir", None)
    if run_dir is None or getattr(trainer, "log", None) is None:
        return False
    path = redirect_output(run_dir)
    thread.note_hangup("continue", output=str(path))
    return True
