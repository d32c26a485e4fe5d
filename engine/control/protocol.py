"""The control socket's wire format and where its socket lives. Imports no torch.

One JSON object per line (UTF-8, `\\n`-terminated), each tagged with `type`:

- both ways, first: `Hello` {protocol, role ("server" or a client's name), pid}; the server's
  also has run_dir, config (resolved), state, step, total_steps, run_started (the RunStarted
  event as a dict, or null before the run has set up), last_metrics (the newest Metrics, for
  the "now" numbers: rates, ETA, memory; its points are already in the history) and history
  (below).
- client -> server: `Command` {kind, args, id}: `events.to_dict` of a Command; the id is the
  client's own.
- server -> sender: `Accepted` {ref: the client's id, command_id: the engine's id}, before the
  command reaches the engine, so the answer (CommandApplied / CommandRejected, whose
  command_id is the engine's) can be told apart from answers to other clients' commands.
- server -> every client: every event (`events.to_dict`: RunStarted, Metrics, StatusChanged,
  CommandApplied, ...), in the order the engine emitted them.
- server -> client: `Error` {reason} (a bad line: the connection stays) and `Bye` {reason}
  (the last line: version mismatch, fell behind, refused, the run ended).

History and live tail: the server's hello has `history` = {"metrics.jsonl": bytes,
"events.jsonl": bytes}, the sizes of the run's two logs at the instant this client joined
the live stream (measured under the RunLog's lock, which the trainer holds around each write
and the event announcing it). Rule for a client: read exactly the first `bytes` of each file
as history; every event after the hello happened after those bytes. No gap, no duplicate.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

PROTOCOL = 1
SOCKET_NAME = "control.sock"
# In the run directory when the socket itself lives elsewhere (its path was too long): that path.
POINTER_NAME = "control.sock.path"
# sockaddr_un holds 108 bytes on Linux, 104 on macOS, with the final NUL; leave room.
MAX_SOCKET_PATH = 100
# One line longer than this is not a command (a config with a huge args dict would be a bug).
MAX_LINE = 1 << 20


class ProtocolError(Exception):
    """The other side does not speak this protocol (version, or not a danlu control socket)."""


def encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    """One line as a dict; ProtocolError when it is not a JSON object with a type."""
    try:
        obj = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not a JSON line: {line[:80]!r}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(f"not a message (a JSON object with a type): {line[:80]!r}")
    return obj


def hello(role: str, **fields: Any) -> dict[str, Any]:
    return {"type": "Hello", "protocol": PROTOCOL, "role": role, "pid": os.getpid(), **fields}


def check_hello(msg: dict[str, Any], who: str) -> None:
    """Raise ProtocolError with a clear sentence unless `msg` is a hello of this protocol version."""
    if msg.get("type") == "Bye":
        raise ProtocolError(f"{who} closed the connection: {msg.get('reason')}")
    if msg.get("type") != "Hello":
        raise ProtocolError(f"{who} did not start with a hello (got {msg.get('type')!r})")
    if msg.get("protocol") != PROTOCOL:
        raise ProtocolError(f"{who} speaks control protocol {msg.get('protocol')!r}, this danlu speaks "
                            f"{PROTOCOL}: use the same danlu version for the run and the client")


# --- where the socket lives -------------------------------------------------------------------

def runtime_dir() -> Path:
    """A short folder only this user can enter: $XDG_RUNTIME_DIR/danlu, else <tmp>/danlu-<uid>.

    Made 0700; refused (OSError) when it exists but belongs to someone else or others can enter it.
    """
    uid = os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(xdg) / "danlu" if xdg and Path(xdg).is_dir() else Path(tempfile.gettempdir()) / f"danlu-{uid}"
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise OSError(f"{base} is not a private folder of this user (owner uid {st.st_uid}, mode "
                      f"{stat.S_IMODE(st.st_mode):o}); remove it or set XDG_RUNTIME_DIR")
    return base


def short_socket_path(run_dir: str | os.PathLike) -> Path:
    """The fallback socket for a run directory whose own path is too long: named by its hash."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(run_dir))).hexdigest()[:16]
    return runtime_dir() / f"{digest}.sock"


def socket_path(run_dir: str | os.PathLike) -> Path:
    """Where a run's server binds: <run_dir>/control.sock, or the short path when that is too long."""
    path = Path(os.path.abspath(run_dir)) / SOCKET_NAME
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
        return path
    return short_socket_path(run_dir)


def recorded_socket(run_dir: str | os.PathLike) -> Path | None:
    """The socket a run's server said it listens on: control.sock, or the pointer's path; None if neither."""
    run_dir = Path(run_dir)
    direct = run_dir / SOCKET_NAME
    if os.path.lexists(direct):
        return direct
    try:
        text = (run_dir / POINTER_NAME).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def peer_credentials(sock: socket.socket) -> tuple[int | None, int | None]:
    """(pid, uid) of the process at the other end; (None, None) where the system cannot say."""
    try:
        if hasattr(socket, "SO_PEERCRED"):  # Linux
            pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
            return pid, uid
        # macOS and the BSDs: getpeereid(3) is LOCAL_PEERCRED's xucred (version, uid, ...)
        raw = sock.getsockopt(0, getattr(socket, "LOCAL_PEERCRED", 1), 76)
        _version, uid = struct.unpack_from("@II", raw)
        pid = None
        if hasattr(socket, "LOCAL_PEERPID"):
            pid = struct.unpack("i", sock.getsockopt(0, socket.LOCAL_PEERPID, 4))[0]
        return pid, uid
    except OSError:
        return None, None
