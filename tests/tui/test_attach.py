"""`danlu attach`: which run it finds, and what it says when there is none. No torch, no server."""

from __future__ import annotations

import json
import socket

import pytest

from danlu.engine.errors import UserError
from danlu.tui.attach import resolve


def make_run(root, name, state="running", pid=999_999_999):
    d = root / name
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"state": state, "pid": pid, "step": 3, "updated": 1.0}))
    return d


def test_a_stale_socket_is_recognised_and_removed(tmp_path):
    d = make_run(tmp_path, "crashed-1")  # 'running', but its pid is dead
    path = d / "control.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the socket file stays; nobody listens
    with pytest.raises(UserError, match="no live run under"):
        resolve(None, tmp_path)
    assert not path.exists()


def test_a_name_prefix_or_a_folder_names_the_run(tmp_path):
    make_run(tmp_path, "sgd-1", state="finished")
    d = make_run(tmp_path, "adam-1", state="finished")
    assert resolve("adam", tmp_path) == d
    assert resolve(str(tmp_path / "adam"), tmp_path / "elsewhere") == d
    assert resolve(str(d), tmp_path) == d
    with pytest.raises(UserError, match="no run directory 'rms'"):
        resolve("rms", tmp_path)
