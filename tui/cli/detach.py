"""`danlu run --detach`: the run as a headless child in a session of its own, outliving the terminal.

The parent checks the config first (a bad one exits 2 and starts nothing), then starts
`danlu run --headless` with setsid (start_new_session): no controlling terminal, so no SIGHUP
when the shell goes. The child's stdout and stderr go to a file in run.out_dir that the child
moves to `output.log` in its run directory as soon as that exists. The parent waits until the
run's control socket answers, prints the run directory and the attach command, and exits 0; if
the child ends first, the parent prints its output and exits with its code. No torch here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from danlu.engine.control import socket_client as sc

# torch's import and the dataset can take a while on a busy machine
START_TIMEOUT_S = 600.0
TEMP_LOG = ".detach-{pid}.log"


def _run_of(out_dir: Path, pid: int, resume: str | None) -> Path | None:
    """The run directory whose state.json names this pid."""
    import json
    candidates = [Path(resume)] if resume else [d for d in out_dir.iterdir() if d.is_dir()]
    for d in candidates:
        try:
            if json.loads((d / "state.json").read_text()).get("pid") == pid:
                return d
        except (OSError, ValueError, AttributeError):
            continue
    return None


def run_detached(args, cfg) -> int:
    """Start the run in the background and return once its control socket answers."""
    where = Path(args.resume) if args.resume else Path(cfg.run.out_dir)
    where.mkdir(parents=True, exist_ok=True)
    log = where / TEMP_LOG.format(pid=os.getpid())
    argv = [sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless", "--log-to", str(log), *args.words]
    if args.resume:
        argv += ["--resume", args.resume]
    if getattr(args, "warm_start", None):
        argv += ["--warm-start", args.warm_start]
    with open(log, "ab") as f:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return _ended(code, log, _run_of(where, proc.pid, args.resume))
            run_dir = _run_of(where, proc.pid, args.resume)
            if run_dir is not None and sc.is_live(run_dir):
                print(f"danlu: running in the background (pid {proc.pid}): {run_dir}\n"
                      f"  watch and steer: danlu attach {run_dir}\n"
                      f"  one command:     danlu ctl {run_dir} pause|resume|save|stop|eval|lr VALUE\n"
                      f"  its output:      {run_dir / 'output.log'}")
                return 0
            time.sleep(0.1)
    except KeyboardInterrupt:
        print(f"danlu: stopped waiting; the run goes on in the background (pid {proc.pid}), "
              f"output in {log} until its run directory exists", file=sys.stderr)
        return 130
    print(f"danlu: the run (pid {proc.pid}) did not answer within {START_TIMEOUT_S:g} s; it may still be "
          f"starting: see {log}", file=sys.stderr)
    return 1


def _ended(code: int, log: Path, run_dir: Path | None) -> int:
    """The child ended before it was up: its output is the message."""
    for p in (log, run_dir / "output.log" if run_dir else None):
        if p is not None and p.is_file():
            text = p.read_text(errors="replace").strip()
            if text:
                print(text, file=sys.stderr)
            if p == log:
                p.unlink(missing_ok=True)
            break
    return code if code else 1


def adopt_log(log: str, run_dir: str | os.PathLike) -> None:
    """In the child: the output file becomes <run_dir>/output.log (the open descriptors follow it)."""
    target = Path(run_dir) / "output.log"
    try:
        os.replace(log, target)
    except OSError:
        pass  # another filesystem: the output stays where the parent said
