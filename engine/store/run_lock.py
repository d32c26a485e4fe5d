"""One live process per run directory: an exclusive lock on `<run>/lock`, held for the run's lifetime.

Two processes training into one run directory interleave metrics.jsonl and overwrite each
other's last.pt, so a run is trained by at most one process at a time. The lock is an
flock on the file: the kernel drops it when its process ends, however it ends, so a
crashed run (SIGKILL, a dead node) is free to resume at once, and a recycled pid can never
make a dead run look alive. The file also names its holder (pid and host) for the message.

Where locks do not work (no fcntl, a filesystem without flock), the check falls back to
state.json: a live state whose pid is a running danlu process on this host. Imports no torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..control.events import LIVE_STATES
from ..errors import UserError

try:
    import fcntl
except ImportError:  # Windows: the state.json check alone
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "lock"
# A probe (`danlu run --resume` before torch loads) holds the lock for an instant; a process
# taking it for good retries this long before calling the run live.
ACQUIRE_PATIENCE_S = 1.0
# DataLoader workers forked by a process share its lock; when that process is killed they notice
# within torch's 5 s status check and exit. A lock whose named holder is dead is waited for this long.
ORPHAN_PATIENCE_S = 15.0


@dataclass(frozen=True)
class Holder:
    """The process training a run now."""

    pid: int | None
    host: str | None


class RunBusy(UserError):
    """The run directory is being trained by another live process."""


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _looks_like_danlu(pid: int) -> bool:
    """A recycled pid belongs to some other program: its command line says so (where readable)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS) or not ours to read: trust the pid
    return b"danlu" in cmdline


def busy_message(run_dir: str | os.PathLike, holder: Holder) -> str:
    here = socket.gethostname()
    where = f" on {holder.host}" if holder.host and holder.host != here else ""
    pid = f"pid {holder.pid}{where}" if holder.pid is not None else f"another process{where}"
    return (f"run {run_dir} is still running ({pid}). Watch it with `danlu attach {run_dir}`, "
            "or stop it first.")


def _read_holder(path: Path) -> Holder:
    try:
        d = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        d = {}
    pid = d.get("pid") if isinstance(d, dict) and isinstance(d.get("pid"), int) else None
    host = d.get("host") if isinstance(d, dict) and isinstance(d.get("host"), str) else None
    return Holder(pid, host)


def _from_state(run_dir: Path) -> Holder | None:
    """Without a usable lock: state.json's pid, when its state is live and its process a running danlu."""
    try:
        s = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(s, dict) or s.get("state") not in LIVE_STATES:
        return None
    pid = s.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not pid_alive(pid) or not _looks_like_danlu(pid):
        return None
    return Holder(pid, None)


def _orphaned(holder: Holder) -> bool:
    """The lock is held but its process is gone: its forked data workers are about to exit."""
    local = holder.host in (None, socket.gethostname())
    return local and holder.pid is not None and not pid_alive(holder.pid)


def live_holder(run_dir: str | os.PathLike) -> Holder | None:
    """Who is training this run directory now, or None (never ran, finished, or crashed)."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    if fcntl is None or not path.is_file():
        return _from_state(run_dir)  # no lock to ask (older runs, Windows)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return _from_state(run_dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(path)
        return None if _orphaned(holder) else holder
    except OSError:
        return _from_state(run_dir)  # this filesystem does not lock
    finally:
        os.close(fd)  # closing drops a lock the probe took
    return None


class RunLock:
    """The lock a Trainer holds on its run directory from setup to cleanup."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: str | os.PathLike) -> RunLock:
        """Take the run directory, or raise RunBusy naming the live process."""
        run_dir = Path(run_dir)
        path = run_dir / LOCK_NAME
        if fcntl is None:
            return cls._unlocked(run_dir, path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return cls._unlocked(run_dir, path)  # a read-only run directory fails later, with its own message
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(path)
                patience = ORPHAN_PATIENCE_S if _orphaned(holder) else ACQUIRE_PATIENCE_S
                if time.monotonic() - start < patience:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                raise RunBusy(busy_message(run_dir, holder)) from None
            except OSError:
                os.close(fd)
                return cls._unlocked(run_dir, path)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        return cls(path, fd)

    @classmethod
    def _unlocked(cls, run_dir: Path, path: Path) -> RunLock:
        holder = _from_state(run_dir)
        if holder is not None:
            raise RunBusy(busy_message(run_dir, holder))
        return cls(path, None)

    def release(self) -> None:
        """Let the run directory go (the kernel does the same if the process dies first)."""
        if self._fd is not None:
            try:
                os.close(self._fd)  # closing the descriptor drops its flock
            except OSError:
                pass
            self._fd = None
