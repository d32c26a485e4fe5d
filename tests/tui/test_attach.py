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


def test_a_stale_socket_is_recognised_and_removed(short_tmp):
    tmp_path = short_tmp  # a socket is bound in it
    d = make_run(tmp_path, "crashed-1")  # 'running', but its pid is dead
    path = d / "control.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the socket file stays; nobody listens
    with pytest.raises(UserError, match="no live run in"):
        resolve(None, tmp_path)
    assert not path.exists()


def test_a_name_prefix_or_a_folder_names_the_run(tmp_path):
    make_run(tmp_path, "sgd-1", state="finished")
    d = make_run(tmp_path, "adam-1", state="finished")
    assert resolve("adam", tmp_path) == d
    assert resolve(str(tmp_path / "adam"), tmp_path / "elsewhere") == d
    assert resolve(str(d), tmp_path) == d
    with pytest.raises(UserError, match="no run directory 'rms'") as e:
        resolve("rms", tmp_path)
    assert f"no run in {tmp_path.absolute()} whose name" in str(e.value)  # where it looked, in full
    with pytest.raises(UserError) as e:
        resolve("rms", tmp_path / "nowhere")
    assert f"no folder {tmp_path / 'nowhere'} to look for a run name in" in str(e.value)
    with pytest.raises(UserError) as e:
        resolve(None, tmp_path / "nowhere")
    assert f"no live run in {tmp_path / 'nowhere'} (no such folder" in str(e.value)


def _hello(run_dir) -> dict:
    from dataclasses import asdict

    from tests.tui.fake_engine import run_started
    started = {**asdict(run_started()), "run_dir": str(run_dir)}
    return {"type": "Hello", "protocol": 1, "role": "server", "pid": 1, "run_dir": str(run_dir),
            "state": "running", "step": 0, "run_started": started, "last_metrics": None,
            "history": {"metrics.jsonl": 0, "events.jsonl": 0}}


@pytest.mark.asyncio
@pytest.mark.parametrize("keys, stop_sent", [(["enter"], False), (["down", "enter"], True)])
async def test_attached_quit_detaches_by_default_or_stops_the_run(tmp_path, keys, stop_sent):
    from danlu.engine.control import events as ev
    from danlu.engine.control.channel import Channel
    from danlu.tui.app import create_app
    from danlu.tui.screens.quit_dialog import QuitDialog

    from .conftest import drain_commands, wait_for

    channel = Channel()
    app = create_app(channel, remote=_hello(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        assert app.screen.focused.id == "quit-detach"
        await pilot.press(*keys)
        if stop_sent:  # the run answers: stopped
            await wait_for(pilot, lambda: any(c.kind == "stop" for c in drain_commands(channel)), what="stop")
            channel.emit(ev.StatusChanged("stopped", 5, "stopped at step 5"))
        await wait_for(pilot, lambda: not app.is_running, what="app exit")
    assert app.detached is not stop_sent
    if not stop_sent:
        assert drain_commands(channel) == []  # detaching sends nothing: the run goes on
