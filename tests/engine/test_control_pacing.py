"""The control server's pacing: with a client attached, Metrics wait for the server's next tick
(each wake takes the GIL from the training thread), while answers wake it at once. Every point
still reaches the client."""

from __future__ import annotations

import json
import os
import socket
import time

from danlu.engine.control import events as ev
from danlu.engine.control import protocol, socket_server
from danlu.engine.control.channel import Channel


def _metrics(step: int) -> ev.Metrics:
    return ev.Metrics(steps=[step], loss=[1.0], grad_norm=[0.5], lr=[1e-3], epoch=1, lrs=[1e-3], clipped=0,
                      phase="constant", steps_per_s=1000.0, samples_per_s=32000.0, elapsed=1.0, eta=None,
                      total_steps=10_000)


def _read_until(s: socket.socket, done, timeout: float = 10.0) -> list[dict]:
    s.settimeout(timeout)
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while not done(out):
        assert time.monotonic() < deadline, f"timed out; got {[m.get('type') for m in out]}"
        buf += s.recv(65536)
        *lines, buf = buf.split(b"\n")
        out += [json.loads(line) for line in lines if line]
    return out


def test_metrics_do_not_wake_the_server_answers_do_and_every_point_arrives(short_tmp, monkeypatch):
    ch = Channel()
    server = socket_server.ControlServer(ch)
    wakes: list[bytes] = []
    write = os.write

    def counting(fd, data):
        if fd == server._wake_w:
            wakes.append(data)
        return write(fd, data)

    monkeypatch.setattr(socket_server.os, "write", counting)
    path = server.open(short_tmp, log=None)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        s.sendall(protocol.encode(protocol.hello("test")))
        _read_until(s, lambda out: any(m.get("type") == "Hello" or m.get("role") == "server" for m in out))
        while server._connected == 0:
            time.sleep(0.01)
        wakes.clear()
        for step in range(1, 501):  # a fast loop's batches, as the engine thread emits them
            ch.emit(_metrics(step))
        assert wakes == []  # the engine's thread never woke the server for them
        points = _read_until(s, lambda out: sum(len(m.get("steps", [])) for m in out) >= 500)
        steps = [st for m in points for st in m.get("steps", [])]
        assert steps == list(range(1, 501))  # all of them, in order, none twice, at the next tick

        t0 = time.monotonic()
        ch.emit(ev.CommandApplied(7, "pause", 500, "running", "paused", "paused"))
        assert len(wakes) == 1  # an answer wakes it
        got = _read_until(s, lambda out: any(m.get("type") == "CommandApplied" for m in out))
        assert time.monotonic() - t0 < socket_server.LIVE_S * 5  # without waiting for ticks
        assert [m["command_id"] for m in got if m.get("type") == "CommandApplied"] == [7]
    finally:
        s.close()
        server.close(grace_s=0.1)
