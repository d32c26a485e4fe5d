"""One process trains a run directory at a time: a live run is not resumed twice; a crashed one resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from danlu.engine.errors import CheckpointError
from danlu.engine.config.files import config_for_resume
from danlu.engine.store.run_lock import RunBusy, RunLock, live_holder

from .helpers import run_trainer

FAULTY = str(Path(__file__).with_name("faulty_model.py"))
TINY_MODEL = {"model": {"name": f"{FAULTY}:build", "args": {}}}


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run's lock, as a live `danlu run` does (no torch: starts fast)."""
    code = ("import fcntl, json, os, sys, time\n"
            f"fd = os.open({str(run_dir / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, json.dumps({'pid': os.getpid(), 'host': os.uname().nodename}).encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _state(run_dir: Path, **values) -> None:
    (run_dir / "state.json").write_text(json.dumps(values))


def test_resume_of_a_live_run_is_refused_and_a_killed_one_resumes(tiny_config):
    t, _ = run_trainer(tiny_config({**TINY_MODEL, "train": {"max_steps": 3}}))
    holder = _hold_lock(t.run_dir)
    try:
        with pytest.raises(RunBusy) as e:
            run_trainer(config_for_resume(t.run_dir, ["train.max_steps=6"]), resume=t.run_dir)
        assert str(e.value) == (f"run {t.run_dir} is still running (pid {holder.pid}). Watch it with "
                                f"`danlu attach {t.run_dir}`, or stop it first.")
        # the command line refuses before loading torch: exit 2, the message, no traceback
        out = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless", "--resume",
                              str(t.run_dir)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and f"still running (pid {holder.pid})" in out.stderr
        assert "Traceback" not in out.stderr
        metrics = (t.run_dir / "metrics.jsonl").read_text()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops its lock
        holder.wait(timeout=30)
    assert (t.run_dir / "metrics.jsonl").read_text() == metrics  # the refused resumes wrote nothing
    resumed, _ = run_trainer(config_for_resume(t.run_dir, ["train.max_steps=6"]), resume=t.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 6
    assert live_holder(t.run_dir) is None  # released when the run ended


def test_two_resumes_at_once_one_wins(tmp_path):
    first = RunLock.acquire(tmp_path)
    try:
        with pytest.raises(RunBusy, match=f"pid {os.getpid()}"):
            RunLock.acquire(tmp_path)
        assert live_holder(tmp_path).pid == os.getpid()
    finally:
        first.release()
    RunLock.acquire(tmp_path).release()


def test_a_resume_that_fails_in_setup_lets_the_run_go(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 2}}))
    for p in (t.run_dir / "checkpoints").glob("*.pt"):
        p.write_bytes(p.read_bytes()[:100])  # no usable checkpoint: setup fails after taking the lock
    with pytest.raises(CheckpointError):
        run_trainer(config_for_resume(t.run_dir), resume=t.run_dir)
    assert live_holder(t.run_dir) is None


def test_without_a_lock_file_state_json_decides_and_a_recycled_pid_is_not_a_run(tmp_path):
    """Runs from before the lock (or where flock fails): state.json's pid, if it is a live danlu."""
    _state(tmp_path, state="running", pid=2**22 + 12345)  # no such process: crashed
    assert live_holder(tmp_path) is None
    other = subprocess.Popen(["sleep", "60"])  # the pid now belongs to some other program
    danlu = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "danlu", "run"])
    try:
        _state(tmp_path, state="running", pid=other.pid)
        assert live_holder(tmp_path) is None
        _state(tmp_path, state="finished", pid=danlu.pid)
        assert live_holder(tmp_path) is None
        _state(tmp_path, state="paused", pid=danlu.pid)
        assert live_holder(tmp_path).pid == danlu.pid
    finally:
        for p in (other, danlu):
            p.kill()
            p.wait()
