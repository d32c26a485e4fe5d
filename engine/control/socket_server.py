"""The run's control socket: a Unix socket any front end of the same user can attach to. No torch.

Every run listens on `control.sock` in its run directory (or, when that path is too long for
AF_UNIX, on a short path in a private runtime folder, named in `control.sock.path`). Only the
run's owner gets in: the socket is 0600 and each connection's peer uid is checked
(SO_PEERCRED / LOCAL_PEERCRED); a refused peer is recorded in events.jsonl. No TCP, ever.

Threads. The engine's thread only appends each event to this server's inbox (a Channel tap,
under the channel's lock) and, when a client is connected and the event is not Metrics, writes
one byte to a wake pipe if the server is not already awake (Metrics go out at the server's next
tick, LIVE_S). Everything else (accepting, JSON, writing to clients) runs
on the `danlu-control` thread. Each client has an outgoing buffer bounded by
MAX_CLIENT_BACKLOG bytes; a client that lets it fill (it stopped reading) is cut off: its
buffer is dropped, a `Bye` with the reason is queued in its place, and the cut is recorded.

Commands from clients go into the same Channel as the local dashboard's, tagged with the
sender's pid (events.jsonl's `by_pid`); answers go to every client like every other event.
Wire format and the history/live rule: protocol.py.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from . import events as ev
from .channel import Channel, join_runs_of_metrics
from .protocol import (MAX_LINE, POINTER_NAME, SOCKET_NAME, ProtocolError, check_hello, decode, encode,
                       hello, peer_credentials, socket_path)

# A client whose unsent output passes this many bytes is cut off (it is not reading).
MAX_CLIENT_BACKLOG = 4 << 20
# Events waiting for the server thread; past this the thread is stuck and every client is cut off.
MAX_INBOX = 100_000
# After a cut, the Bye waits this long for the client to read its way to it; then the socket closes.
CUT_GRACE_S = 30.0
# How long close() lets clients read the last events and the Bye before the socket goes.
CLOSE_GRACE_S = 2.0
# Idle wake-up of the server thread: how often it folds the run's state with no client connected.
IDLE_S = 0.2
# With a client connected, Metrics wait for the server's next tick instead of waking it: each wake
# takes the GIL from the training thread, and a wake per Metrics batch cost a fast loop several
# percent (docs/performance.md). Answers, status changes and alerts still wake it at once.
LIVE_S = 0.1


class _Client:
    def __init__(self, sock: socket.socket, pid: int | None):
        self.sock, self.pid = sock, pid
        self.name = "client"
        self.greeted = False             # its hello arrived (commands are taken after it)
        self.inbuf = bytearray()
        self.out = bytearray()
        self.cut: str | None = None      # why it is being cut off; only its Bye is still sent
        self.close_at: float | None = None

    def queue(self, data: bytes) -> None:
        if self.cut is None:
            self.out += data


class ControlServer:
    """Serves one run's control socket on its own thread (see the module docstring)."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.path: Path | None = None
        self.run_dir: Path | None = None
        self._inbox: deque = deque()
        self._overflow = False
        self._awake = False
        self._clients: dict[int, _Client] = {}
        self._connected = 0              # read by the tap without a lock (a stale value costs one wake)
        self._log: Any = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # what a hello tells about the run now (folded from the events, on the server thread)
        self.snapshot: dict[str, Any] = {"state": ev.State.STARTING, "step": 0, "total_steps": None,
                                         "run_started": None, "last_metrics": None, "config": None}
        self.cut_offs: list[str] = []    # reasons clients were cut off (tests and benchmarks read it)
        channel.add_tap(self._offer)

    # ---------------------------------------------------------------- the engine's side
    def _offer(self, event: Any) -> None:
        """On the engine's thread, under the channel's lock: append, and wake the server if needed."""
        self._inbox.append(event)
        if len(self._inbox) > MAX_INBOX:
            self._overflow = True
        if self._connected and not self._awake and not isinstance(event, ev.Metrics):
            self._awake = True
            try:
                os.write(self._wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass

    # ---------------------------------------------------------------- lifetime
    def open(self, run_dir: str | os.PathLike, log: Any, config: dict[str, Any] | None = None) -> Path:
        """Bind the run's socket and start serving; returns the socket's path. `log` is the RunLog."""
        self.run_dir, self._log = Path(run_dir).resolve(), log
        self.snapshot["config"] = config
        path = socket_path(self.run_dir)
        if os.path.lexists(path):
            os.unlink(path)  # a crashed run's socket: the run lock says this process owns the run now
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # bound with the umask's mode (never writable by others, so nobody else can connect), then 0600
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        if path.parent != self.run_dir:
            tmp = self.run_dir / (POINTER_NAME + ".tmp")
            tmp.write_text(str(path) + "\n")
            os.replace(tmp, self.run_dir / POINTER_NAME)
        self._listener, self.path = listener, path
        self._thread = threading.Thread(target=self._serve, name="danlu-control", daemon=True)
        self._thread.start()
        return path

    def close(self, reason: str = "the run ended", grace_s: float = CLOSE_GRACE_S) -> None:
        """Send what is pending and a Bye, wait up to `grace_s` for clients to read it, remove the socket."""
        if self._closed:
            return
        self._closed = True
        self.channel.remove_tap(self._offer)  # a restart with changes brings its own server to this channel
        if self._thread is None:  # never opened
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            return
        self._close_reason, self._grace_s = reason, grace_s
        self._closing.set()
        self._wake()
        self._thread.join(timeout=grace_s + 5)
        self._thread = None

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass

    # ---------------------------------------------------------------- the server's thread
    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._closing.is_set():
                for key, mask in sel.select(timeout=LIVE_S if self._clients else IDLE_S):
                    if key.data == "accept":
                        self._accept(sel)
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        c = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(sel, c)
                        if mask & selectors.EVENT_WRITE and c.sock.fileno() in self._clients:
                            self._write(sel, c)
                self._pump(sel)
            self._shutdown(sel)
        finally:
            sel.close()
            self._remove_socket()

    def _drain_wake(self) -> None:
        self._awake = False
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        conn.setblocking(False)
        pid, uid = peer_credentials(conn)
        if uid != os.getuid():
            self._refuse(conn, pid, uid)
            return
        c = _Client(conn, pid)
        # The hello and the history split at one instant: no write-and-announce pair of the trainer is
        # half done while the log's lock is held (RunLog's docstring), and every event emitted before is
        # delivered to the clients already here before this one joins.
        lock = self._log.lock if self._log is not None else threading.RLock()
        with lock:
            self._pump(sel)
            sizes = self._log.sizes() if self._log is not None else {}
            c.out += encode(hello("server", run_dir=str(self.run_dir), history=sizes, **self.snapshot))
            self._clients[conn.fileno()] = c
            self._connected = len(self._clients)
        sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def _refuse(self, conn: socket.socket, pid: int | None, uid: int | None) -> None:
        reason = (f"refused: this run belongs to uid {os.getuid()}; only its owner may connect"
                  if uid is not None else "refused: the peer's uid cannot be checked on this system")
        try:
            conn.send(encode({"type": "Bye", "reason": reason}))
        except OSError:
            pass
        conn.close()
        self._record("control_refused", f"control socket: refused a connection from uid {uid} (pid {pid})",
                     uid=uid, pid=pid)

    def _record(self, kind: str, message: str, **fields: Any) -> None:
        """A line in events.jsonl and a warning on every screen."""
        step = int(self.snapshot.get("step") or 0)
        if self._log is not None:
            try:
                self._log.event(kind, step, message=message, **fields)
            except (OSError, ValueError):
                pass  # the log is closed: the run is over
        self.channel.emit(ev.LogLine(step, "warning", message))

    def _read(self, sel: selectors.BaseSelector, c: _Client) -> None:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sel, c)
            return
        c.inbuf += data
        while b"\n" in c.inbuf:
            line, _, rest = bytes(c.inbuf).partition(b"\n")
            c.inbuf = bytearray(rest)
            if line.strip():
                self._handle(sel, c, line)
        if len(c.inbuf) > MAX_LINE:
            self._cut(c, f"a line longer than {MAX_LINE} bytes")

    def _handle(self, sel: selectors.BaseSelector, c: _Client, line: bytes) -> None:
        try:
            msg = decode(line)
        except ProtocolError as e:
            c.queue(encode({"type": "Error", "reason": str(e)}))
            return
        kind = msg["type"]
        if kind == "Hello":
            try:
                check_hello(msg, "the client")
            except ProtocolError as e:
                self._cut(c, str(e), record=False)
                return
            c.greeted, c.name = True, str(msg.get("role") or "client")
        elif kind == "Command":
            if c.cut is not None:
                return  # being cut off (or the run is ending): nothing more is taken from it
            if not c.greeted:
                c.queue(encode({"type": "Error", "reason": "send a hello before commands"}))
                return
            args, ref = msg.get("args") or {}, msg.get("id")
            if not isinstance(msg.get("kind"), str) or not isinstance(args, dict):
                c.queue(encode({"type": "Error", "reason": "a Command needs a kind (string) and args (object)"}))
                return
            cmd = ev.Command(msg["kind"], args, sender=c.pid if c.pid is not None else -1)
            c.queue(encode({"type": "Accepted", "ref": ref, "command_id": cmd.id}))
            self.channel.send(cmd)
        else:
            c.queue(encode({"type": "Error", "reason": f"unknown message type {kind!r}"}))

    def _write(self, sel: selectors.BaseSelector, c: _Client) -> None:
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(sel, c)
                return
        if not c.out:
            if c.cut is not None:
                self._drop(sel, c)  # its Bye is out
                return
            sel.modify(c.sock, selectors.EVENT_READ, c)

    def _pump(self, sel: selectors.BaseSelector) -> None:
        """Fold the inbox into the snapshot and queue it for every client (JSON made once per event)."""
        if self._overflow:
            self._inbox.clear()
            self._overflow = False
            for c in list(self._clients.values()):
                self._cut(c, "the control server fell behind the engine")
        batch = []
        while self._inbox:
            batch.append(self._inbox.popleft())
        for e in join_runs_of_metrics(batch):
            self._fold(e)
            if self._clients:
                line = encode(ev.to_dict(e))
                for c in self._clients.values():
                    c.queue(line)
        now = time.monotonic()
        for c in list(self._clients.values()):
            if c.cut is None and len(c.out) > MAX_CLIENT_BACKLOG:
                self._cut(c, f"it fell behind ({len(c.out)} bytes unread); reattach to continue")
            if c.close_at is not None and now > c.close_at:
                self._drop(sel, c)
            elif c.out:
                try:
                    sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                except (KeyError, ValueError):
                    pass

    def _fold(self, e: Any) -> None:
        s = self.snapshot
        if isinstance(e, ev.RunStarted):
            s.update(run_started=ev.to_dict(e), config=e.config, total_steps=e.total_steps, step=e.start_step)
        elif isinstance(e, ev.StatusChanged):
            s.update(state=str(e.state), step=e.step)
        elif isinstance(e, ev.Metrics):
            s.update(step=e.step, total_steps=e.total_steps, last_metrics=ev.to_dict(e))
        elif hasattr(e, "step"):
            s["step"] = max(int(s.get("step") or 0), int(e.step))

    def _cut(self, c: _Client, reason: str, record: bool = True) -> None:
        """Stop sending it events; its Bye (in place of what it did not read) goes out, then it is closed."""
        if c.cut is not None:
            return
        c.out = bytearray(encode({"type": "Bye", "reason": reason}))
        c.cut, c.close_at = reason, time.monotonic() + CUT_GRACE_S
        self.cut_offs.append(reason)
        if record:
            self._record("control_client_cut", f"control socket: cut off {c.name} (pid {c.pid}): {reason}",
                         pid=c.pid, reason=reason)

    def _drop(self, sel: selectors.BaseSelector, c: _Client) -> None:
        self._clients.pop(c.sock.fileno(), None)
        self._connected = len(self._clients)
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def _shutdown(self, sel: selectors.BaseSelector) -> None:
        """The run is over: the last events and a Bye to everyone, a short wait for them to read, close."""
        self._pump(sel)
        for c in list(self._clients.values()):
            if c.cut is None:
                c.queue(encode({"type": "Bye", "reason": self._close_reason}))
                c.cut = self._close_reason
            try:
                sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            except (KeyError, ValueError):
                pass
        self._listener.close()
        deadline = time.monotonic() + self._grace_s
        while self._clients and time.monotonic() < deadline:
            for key, mask in sel.select(timeout=0.05):
                if isinstance(key.data, _Client) and key.data.sock.fileno() in self._clients:
                    if mask & selectors.EVENT_WRITE:
                        self._write(sel, key.data)
                    elif mask & selectors.EVENT_READ:
                        self._read(sel, key.data)
        for c in list(self._clients.values()):
            self._drop(sel, c)

    def _remove_socket(self) -> None:
        for p in (self.path, self.run_dir / POINTER_NAME if self.run_dir else None):
            if p is not None:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


__all__ = ["ControlServer", "MAX_CLIENT_BACKLOG", "SOCKET_NAME", "peer_credentials"]
