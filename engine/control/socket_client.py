"""Talking to a run's control socket from another process: find it, connect, command, listen. No torch.

    from danlu.engine.control import socket_client as sc
    client = sc.connect(run_dir, name="ctl")       # NotLive / ProtocolError with a clear message
    client.hello                                    # the server's hello (protocol.py lists its fields)
    answer = client.request(events.pause(), timeout=30)   # CommandApplied or CommandRejected
    for e in client.events(timeout=1.0): ...        # events as they come; ends after 1 s of silence
    client.close()

`RemoteChannel(client)` is a Channel fed from the socket by a reader thread: a front end built
for the in-process Channel (the dashboard) runs on it unchanged.

Answers are rewritten on arrival so that a client sees its own ids: the command_id of an answer
to a command this client sent is that Command's id; an answer to anyone else's command carries
the engine's id negated (never one of ours).

History: read the first `hello["history"][file]` bytes of the run's metrics.jsonl and events.jsonl;
the events that follow the hello are exactly what came after (protocol.py).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from . import events as ev
from .channel import Channel
from .protocol import MAX_LINE, POINTER_NAME, ProtocolError, check_hello, decode, encode, hello, recorded_socket

__all__ = ["Client", "CutOff", "NotLive", "ProtocolError", "RemoteChannel", "connect", "find_socket",
           "is_live"]


class NotLive(Exception):
    """No live run answers at that run directory (never served, ended, or crashed)."""


class CutOff(Exception):
    """The server ended this connection and said why (`reason`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _run_pid_alive(run_dir: Path) -> bool:
    from ..store.run_lock import live_holder  # torch-free; imported late, as ctl needs it only here
    return live_holder(run_dir) is not None


def find_socket(run_dir: str | os.PathLike) -> Path | None:
    """The socket a live run listens on; None when there is none. A stale one (its run's process is
    gone) is removed, with its pointer file."""
    run_dir = Path(run_dir)
    path = recorded_socket(run_dir)
    if path is None:
        return None
    if os.path.exists(path) and _answers(path):
        return path
    if not _run_pid_alive(run_dir):
        for p in (path, run_dir / POINTER_NAME):
            try:
                os.unlink(p)
            except OSError:
                pass
        return None
    return path if os.path.exists(path) else None


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(str(path))
        return True
    except OSError as e:
        return e.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        s.close()


def is_live(run_dir: str | os.PathLike) -> bool:
    return find_socket(run_dir) is not None


def connect(run_dir: str | os.PathLike, name: str = "client", timeout: float = 10.0) -> Client:
    """Connect to a run and exchange hellos; NotLive when nothing answers, ProtocolError on a mismatch."""
    run_dir = Path(run_dir)
    path = find_socket(run_dir)
    if path is None:
        raise NotLive(f"{run_dir} is not running (no control socket answers)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as e:
        sock.close()
        raise NotLive(f"{run_dir}: cannot connect to {path}: {e.strerror or e}") from None
    sock.settimeout(None)
    client = Client(sock, name)
    try:
        client._greet(timeout)
    except BaseException:
        client.close()
        raise
    return client


class Client:
    """One connection to a run's control socket (see the module docstring)."""

    def __init__(self, sock: socket.socket, name: str = "client"):
        self.sock, self.name = sock, name
        self.hello: dict[str, Any] = {}
        self.bye: str | None = None          # the server's reason, once it said goodbye
        self._buf = bytearray()
        self._pending: deque = deque()       # decoded messages not yet taken
        self._ids: dict[int, int] = {}       # the engine's command id -> ours
        self._refs: dict[int, int | None] = {}  # our id -> the engine's (None until Accepted)
        self._send_lock = threading.Lock()

    # -- lines in and out --
    def _read_line(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None at timeout; CutOff at end of stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if self.bye is not None:
                raise CutOff(self.bye)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                return None
            try:
                # select, not a socket timeout: a RemoteChannel reads in one thread and sends in another
                if not select.select([self.sock], [], [], left)[0]:
                    return None
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError) as e:
                data, self.bye = b"", f"connection lost: {getattr(e, 'strerror', None) or e}"
            if not data:
                self.bye = self.bye or "the run closed the connection"
                raise CutOff(self.bye)
            self._buf += data
            if len(self._buf) > MAX_LINE * 64:
                raise ProtocolError("the server sent a line too long to be a danlu message")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return decode(line)

    def _send(self, obj: dict[str, Any]) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(encode(obj))
            except OSError as e:
                raise CutOff(f"connection lost: {e.strerror or e}") from None

    def _greet(self, timeout: float) -> None:
        msg = self._read_line(timeout)
        if msg is None:
            raise ProtocolError("the run did not say hello within "
                                f"{timeout:g} s: is it a danlu control socket?")
        check_hello(msg, "the run")
        self.hello = msg
        self._send(hello(self.name))

    # -- messages to events --
    def _take(self, msg: dict[str, Any]) -> Any:
        """A message as an event (None for protocol lines: Accepted, Error, Bye)."""
        kind = msg["type"]
        if kind == "Accepted":
            ref, cid = msg.get("ref"), msg.get("command_id")
            if isinstance(ref, int) and isinstance(cid, int) and ref in self._refs:
                self._refs[ref], self._ids[cid] = cid, ref
            return None
        if kind == "Bye":
            self.bye = str(msg.get("reason"))
            return None
        if kind == "Error":
            return ev.LogLine(0, "error", f"control socket: {msg.get('reason')}")
        if kind not in ev.EVENT_TYPES:
            return None  # a newer server's event this client does not know: skipped
        try:
            e = ev.from_dict(msg)
        except TypeError:
            return None
        if isinstance(e, (ev.CommandApplied, ev.CommandRejected)):
            from dataclasses import replace
            e = replace(e, command_id=self._ids.pop(e.command_id, -e.command_id))
        return e

    def next_event(self, timeout: float | None = None) -> Any:
        """The next event, or None when none came within `timeout`; CutOff when the server said goodbye."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._pending:
                msg = self._pending.popleft()
            else:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                msg = self._read_line(left)
                if msg is None:
                    return None
            e = self._take(msg)
            if e is not None:
                return e
            if self.bye is not None:
                raise CutOff(self.bye)

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Events as they arrive; ends after `timeout` seconds without one, or when the run says goodbye."""
        while True:
            try:
                e = self.next_event(timeout)
            except CutOff:
                return
            if e is None:
                return
            yield e

    # -- commands --
    def send(self, command: ev.Command) -> ev.Command:
        """Send a command without waiting; its answer comes as an event with `command.id`."""
        self._refs[command.id] = None
        if len(self._refs) > 1000:
            self._refs.pop(next(iter(self._refs)))
        self._send({"type": "Command", "kind": str(command.kind), "args": command.args, "id": command.id})
        return command

    def request(self, command: ev.Command, timeout: float = 60.0) -> ev.CommandApplied | ev.CommandRejected:
        """Send a command and wait for its answer. Other events that arrive meanwhile are skipped
        (a client that wants them too reads them with next_event after sending)."""
        self.send(command)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {command.kind} within {timeout:g} s")
            try:
                e = self.next_event(left)
            except CutOff as c:
                raise NotLive(f"the run ended before answering ({c.reason})") from None
            if isinstance(e, (ev.CommandApplied, ev.CommandRejected)) and e.command_id == command.id:
                return e

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class RemoteChannel(Channel):
    """A Channel whose events come from a run's control socket and whose commands go to it."""

    def __init__(self, client: Client):
        super().__init__()
        self.client = client
        self.closed: str | None = None       # why the stream ended, once it has
        self._reader = threading.Thread(target=self._read, name="danlu-remote", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                e = self.client.next_event(None)
            except CutOff as c:
                self.closed = c.reason
                return
            except (ProtocolError, OSError) as exc:
                self.closed = str(exc)
                return
            if e is not None:
                self.emit(e)

    def send(self, command: ev.Command) -> ev.Command:
        try:
            return self.client.send(command)
        except CutOff as c:
            self.closed = c.reason
            self.emit(ev.CommandRejected(command.id, command.kind, 0, f"not sent: {c.reason}"))
            return command

    def close(self) -> None:
        self.client.close()
