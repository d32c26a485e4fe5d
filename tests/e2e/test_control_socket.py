"""The control socket with a real engine thread and real Unix sockets: who gets in, the seam between
the run's files and the live tail, a client that never reads, two clients at once, version mismatch."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from danlu.engine.control import events as ev
from danlu.engine.control import protocol, socket_server
from danlu.engine.control import socket_client as sc
from danlu.engine.control.channel import Channel
from danlu.engine.loop.runner import start_engine
from danlu.engine.store.runlog import read_jsonl

from ..conftest import wait_until

LONG = {"train": {"epochs": 10000}, "monitor": {"log_every": 1}, "data": {"val_fraction": 0.0}}


def _start(tiny_config, over=None, out_dir=None):
    cfg = tiny_config({**LONG, **(over or {})})
    if out_dir is not None:
        cfg.run.out_dir = str(out_dir)
    ch = Channel()
    th = start_engine(cfg, ch, interactive=False)
    wait_until(lambda: th.control.path is not None and th.control.path.exists(), timeout=120)
    wait_until(lambda: th.trainer.progress.step > 2, timeout=120)  # set up and training
    return th, ch


def _finish(th, ch):
    ch.send(ev.stop(save=False))
    th.join(timeout=60)
    assert not th.is_alive()


def _raw(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    return s


def _lines(s: socket.socket, until: str, timeout: float = 30.0) -> list[dict]:
    """Messages read from a raw socket until one of type `until` (or the end of the stream)."""
    s.settimeout(timeout)
    buf, out = b"", []
    while True:
        data = s.recv(65536)
        if not data:
            return out
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
            if out[-1]["type"] == until:
                return out


def test_socket_is_0600_and_the_hello_describes_the_run(tiny_config, short_tmp):
    th, ch = _start(tiny_config, out_dir=short_tmp)
    try:
        run_dir = th.trainer.run_dir
        path = run_dir / protocol.SOCKET_NAME
        assert th.control.path == path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        client = sc.connect(run_dir, name="test")
        h = client.hello
        assert h["protocol"] == protocol.PROTOCOL and h["pid"] == os.getpid()
        assert h["run_dir"] == str(run_dir.resolve()) and h["config"]["run"]["name"] == "t"
        assert h["state"] == "running" and h["step"] >= 0 and h["total_steps"] > 0
        assert set(h["history"]) == {"metrics.jsonl", "events.jsonl"}
        client.close()
    finally:
        _finish(th, ch)
    assert not path.exists()  # removed when the run ends


def test_files_then_live_tail_have_no_gap_and_no_duplicate(tiny_config):
    """At log_every 1 (a flush and a Metrics event per step), join history and live tail three times."""
    th, ch = _start(tiny_config)
    try:
        run_dir = th.trainer.run_dir
        for _ in range(3):
            client = sc.connect(run_dir)
            live = []
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                e = client.next_event(0.2)
                if isinstance(e, ev.Metrics):
                    live += e.steps
            client.close()
            size = client.hello["history"]["metrics.jsonl"]
            with open(run_dir / "metrics.jsonl", "rb") as f:
                head = f.read(size)
            assert head.endswith(b"\n")  # whole lines only
            history = [json.loads(x)["step"] for x in head.splitlines() if b'"loss"' in x]
            joined = history + live
            assert live and history, (len(history), len(live))
            assert joined == list(range(1, len(joined) + 1)), "a gap or a duplicate at the seam"
    finally:
        _finish(th, ch)


def test_two_clients_both_see_an_lr_change_made_by_either(tiny_config):
    th, ch = _start(tiny_config)
    try:
        run_dir = th.trainer.run_dir
        a, b = sc.connect(run_dir, name="a"), sc.connect(run_dir, name="b")
        for sender, other, cmd in ((a, b, ev.set_lr(1e-3)), (b, a, ev.set_lr(factor=0.5))):
            answer = sender.request(cmd, timeout=60)
            assert isinstance(answer, ev.CommandApplied) and answer.command_id == cmd.id
            seen = next(e for e in other.events(timeout=10) if isinstance(e, ev.CommandApplied))
            assert seen.kind == "set_lr" and seen.new == answer.new and seen.step == answer.step
            assert seen.command_id < 0  # not one of the other client's own ids
        assert answer.new == pytest.approx([5e-4, 5e-4])
        by = [r["by_pid"] for r in read_jsonl(run_dir / "events.jsonl") if r["kind"] == "set_lr"]
        assert by == [os.getpid(), os.getpid()]  # who sent each (both clients are this process)
        a.close()
        b.close()
    finally:
        _finish(th, ch)


def test_a_client_that_never_reads_is_cut_off_with_a_reason(tiny_config, monkeypatch):
    monkeypatch.setattr(socket_server, "MAX_CLIENT_BACKLOG", 64 << 10)
    th, ch = _start(tiny_config)
    try:
        run_dir = th.trainer.run_dir
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(str(th.control.path))
        s.sendall(protocol.encode(protocol.hello("sleeper")))
        peak = 0

        def cut():
            nonlocal peak
            peak = max([peak] + [len(c.out) for c in list(th.control._clients.values())])
            return th.control.cut_offs

        wait_until(cut, timeout=120)
        assert peak <= (64 << 10) + (64 << 10)  # the backlog never grew past its bound (plus one batch)
        step = th.trainer.progress.step
        wait_until(lambda: th.trainer.progress.step > step + 20, timeout=60)  # training went on
        msgs = _lines(s, until="Bye")
        assert msgs[-1]["type"] == "Bye" and "fell behind" in msgs[-1]["reason"]
        s.close()
        cuts = [r for r in read_jsonl(run_dir / "events.jsonl") if r["kind"] == "control_client_cut"]
        assert cuts and cuts[0]["pid"] == os.getpid() and "fell behind" in cuts[0]["reason"]
    finally:
        _finish(th, ch)


def test_another_uid_is_refused_and_recorded(tiny_config):
    if os.getuid() != 0:
        pytest.skip("switching to another uid needs root")
    base = Path(tempfile.mkdtemp(prefix="danlu-uid-"))
    base.chmod(0o755)  # the other user may walk to the socket; only the socket's mode and the uid check stop it
    th, ch = _start(tiny_config, out_dir=base)
    try:
        run_dir, path = th.trainer.run_dir, th.control.path
        run_dir.chmod(0o755)

        def as_nobody() -> str:
            """Connect as uid 65534 in a forked child; what it got back, through a pipe."""
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: no Python cleanup, no pytest
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    try:
                        s = _raw(path)
                        got = b""
                        s.settimeout(10)
                        while b"\n" not in got:
                            data = s.recv(4096)
                            if not data:
                                break
                            got += data
                        out = got.split(b"\n")[0].decode() or "closed"
                    except PermissionError:
                        out = "EACCES"
                    os.write(w, out.encode())
                finally:
                    os._exit(0)
            os.close(w)
            os.waitpid(pid, 0)
            with os.fdopen(r) as f:
                return f.read()

        assert as_nobody() == "EACCES"  # 0600: the kernel refuses the connect
        os.chmod(path, 0o666)  # a socket whose mode let others in: the peer check still refuses them
        reply = json.loads(as_nobody())
        assert reply["type"] == "Bye" and "refused" in reply["reason"]
        wait_until(lambda: any(r["kind"] == "control_refused" for r in read_jsonl(run_dir / "events.jsonl")))
        rec = next(r for r in read_jsonl(run_dir / "events.jsonl") if r["kind"] == "control_refused")
        assert rec["uid"] == 65534 and rec["pid"] > 0
    finally:
        _finish(th, ch)


def test_deep_out_dir_uses_the_short_path_and_ctl_finds_it(tiny_config, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    th, ch = _start(tiny_config, out_dir=deep)
    try:
        run_dir = th.trainer.run_dir
        path = th.control.path
        assert len(os.fsencode(str(path))) <= protocol.MAX_SOCKET_PATH and path.parent != run_dir
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert (run_dir / protocol.POINTER_NAME).read_text().strip() == str(path)
        res = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", "ctl", str(run_dir), "pause"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and res.stdout.startswith("applied at step"), res.stderr
    finally:
        _finish(th, ch)
    assert not path.exists() and not (run_dir / protocol.POINTER_NAME).exists()


def test_version_mismatch_is_a_clear_error_both_ways(tiny_config, short_tmp):
    tmp_path = short_tmp  # a socket is bound in it
    th, ch = _start(tiny_config)
    try:  # a client of another version, at a real run
        s = _raw(th.control.path)
        assert _lines(s, until="Hello")[-1]["protocol"] == protocol.PROTOCOL
        s.sendall(protocol.encode({"type": "Hello", "protocol": 99, "role": "future", "pid": 1}))
        bye = _lines(s, until="Bye", timeout=10)[-1]
        assert bye["type"] == "Bye" and "protocol 99" in bye["reason"] and "same danlu version" in bye["reason"]
        s.close()
    finally:
        _finish(th, ch)
    # a run of another version, seen from this client
    run_dir = tmp_path / "fake-run"
    run_dir.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(run_dir / protocol.SOCKET_NAME))
    listener.listen(4)

    def serve():
        for _ in range(2):  # find_socket's probe, then the connection
            conn, _ = listener.accept()
            try:
                conn.sendall(protocol.encode({"type": "Hello", "protocol": 0, "role": "server", "pid": 1}))
            except OSError:
                pass
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(sc.ProtocolError, match="speaks control protocol 0, this danlu speaks"):
        sc.connect(run_dir, timeout=10)
    listener.close()


def test_a_stale_socket_is_removed(short_tmp):
    run_dir = short_tmp / "crashed-run"
    run_dir.mkdir()
    (run_dir / "state.json").write_text(json.dumps({"state": "running", "pid": 2 ** 22 + 12345}))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(run_dir / protocol.SOCKET_NAME))
    s.close()  # bound, never listening: what a killed run leaves
    assert sc.find_socket(run_dir) is None
    assert not (run_dir / protocol.SOCKET_NAME).exists()
    with pytest.raises(sc.NotLive):
        sc.connect(run_dir)
