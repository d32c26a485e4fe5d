"""Runs that outlive their terminal: `danlu run` in tmux, the terminal killed, `danlu attach`, `d`.

Real processes, real sockets, tmux for the terminals (skipped where tmux is missing; the seam
test needs no terminal). Each tmux session has a server of its own and is always killed.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from danlu.engine.control import events as ev
from danlu.engine.control.protocol import recorded_socket

from .test_tmux import DANLU, TINY_RUN, Tmux, danlu_run, stepping

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
T = 90.0  # deadlines: two cores shared with other jobs, and torch loads in each run


def wait(predicate, what: str, timeout: float = T, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def subreaper() -> bool:
    """Adopt orphans (the trainer, once its parent and tmux are gone), so its exit code can be read."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def live_step(run_dir: Path) -> int:
    """The run's step, as its control socket says (its hello)."""
    from danlu.engine.control.socket_client import connect
    client = connect(run_dir, name="test")
    try:
        return int(client.hello.get("step") or 0)
    finally:
        client.close()


def attach(run_dir: Path, cwd: Path, size=(120, 40)) -> Tmux:
    return Tmux(" ".join([DANLU, "attach", str(run_dir)]), cwd, size=size)


def event_kinds(run_dir: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in (run_dir / "events.jsonl").read_text().splitlines() if line]


@needs_tmux
def test_the_run_outlives_its_terminal_and_attach_steers_it(tmp_path):
    reaping = subreaper()
    out = tmp_path / "runs"
    first = Tmux(danlu_run(*TINY_RUN, f"run.out_dir={out}"), tmp_path)
    views: list[Tmux] = []
    pid = None
    try:
        first.wait(stepping, "RUNNING and a step count")
        (run_dir,) = out.iterdir()
        pid = wait(lambda: state(run_dir).get("pid"), "the trainer's pid in state.json")
        first.kill()  # the terminal goes away, as with a dropped SSH session
        wait(lambda: "hangup" in event_kinds(run_dir), "the hangup in events.jsonl")
        step = live_step(run_dir)
        wait(lambda: live_step(run_dir) > step, "more steps after the terminal went away", every=0.5)
        assert psutil.pid_exists(pid)

        # two dashboards attached: both draw the loss from step 1, both see one LR change
        views = [attach(run_dir, tmp_path), attach(run_dir, tmp_path)]
        for v in views:
            v.wait(lambda s: "history from the run's files: steps 1-" in s, "the history in the event log")
            v.wait(lambda s: re.search(r"└1 ", s), "the loss chart's axis from step 1")
        attached = [p for p in psutil.process_iter(["cmdline"])
                    if "attach" in (p.info["cmdline"] or []) and str(run_dir) in (p.info["cmdline"] or [])]
        assert len(attached) == 2
        for p in attached:  # the attached dashboard never loads torch
            assert not any("libtorch" in m.path for m in p.memory_maps())
        views[0].keys("l")
        views[0].wait(lambda s: "Change learning rate" in s, "the LR dialog")
        views[0].keys("/2", literal=True)
        views[0].keys("Enter")
        for v in views:
            v.wait(lambda s: "lr 0.002 → 0.001" in s, "the applied LR in each event log")
        assert "set_lr" in event_kinds(run_dir)

        # q: Detach is the default; the run goes on
        for v in views:
            v.keys("q")
            v.wait(lambda s: "Detach" in s and "Stop the run" in s, "the quit dialog")
            v.keys("Enter")
            assert v.exit_code() == 0
        step = live_step(run_dir)
        wait(lambda: live_step(run_dir) > step, "steps after detaching", every=0.5)

        # attach again and stop: a checkpoint, exit 0, no socket left
        again = attach(run_dir, tmp_path, size=(80, 24))
        views.append(again)
        again.wait(lambda s: "history from the run's files" in s, "the history")
        again.keys("q")
        again.wait(lambda s: "Stop the run" in s, "the quit dialog")
        again.keys("Down")
        again.keys("Enter")
        assert again.exit_code() == 0
        wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             "the run's process to end")
        if reaping:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        assert (run_dir / "checkpoints" / "last.pt").is_file()
        assert state(run_dir)["state"] == "stopped"
        assert recorded_socket(run_dir) is None  # the socket (and a pointer to it) removed
        assert "stopped at step" in (run_dir / "output.log").read_text()
    finally:
        for t in (first, *views):
            t.kill()
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


@needs_tmux
def test_d_gives_the_prompt_back_and_the_run_goes_on(tmp_path):
    from danlu.engine.control.socket_client import connect
    out = tmp_path / "runs"
    shell = Tmux("PS1='PROMPT$ ' bash --norc -i", tmp_path, size=(100, 30))
    pid = None
    try:
        shell.wait(lambda s: "PROMPT$" in s, "the shell")
        shell.keys(danlu_run(*TINY_RUN, f"run.out_dir={out}"), literal=True)
        shell.keys("Enter")
        shell.wait(stepping, "RUNNING and a step count")
        (run_dir,) = out.iterdir()
        pid = state(run_dir)["pid"]
        shell.keys("d")
        t0 = time.monotonic()
        shell.wait(lambda s: s.rstrip().endswith("PROMPT$"), "the prompt", timeout=10)
        assert time.monotonic() - t0 < 2.0
        assert "Back to it: danlu attach runs/default-" in shell.screen()  # the path from where danlu ran
        step = live_step(run_dir)
        wait(lambda: live_step(run_dir) > step, "steps after the prompt came back", every=0.5)
        assert "detach" in event_kinds(run_dir)
        client = connect(run_dir, name="test")
        try:
            answer = client.request(ev.stop(save=True), timeout=T)
        finally:
            client.close()
        assert isinstance(answer, ev.CommandApplied)
        wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             "the run's process to end")
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    finally:
        shell.kill()
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_no_gap_and_no_duplicate_at_the_seam(tmp_path):
    """Every step once: the files up to the hello's sizes, then the live tail, at log_every 1."""
    from danlu.engine.control.socket_client import connect, is_live
    from danlu.tui.history import read_history
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless", *TINY_RUN,
                             "monitor.log_every=1", "train.epochs=10000", f"run.out_dir={out}"],  # ended by SIGTERM
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait(lambda: next(iter(out.iterdir()), None) if out.is_dir() else None, "the run directory")
        wait(lambda: is_live(run_dir) and live_step(run_dir) > 5, "some steps")
        for _ in range(3):  # three joins, each at a different moment of the writes
            client = connect(run_dir, name="test")
            try:
                sizes = client.hello["history"]
                h = read_history(run_dir, metrics_limit=sizes["metrics.jsonl"],
                                 events_limit=sizes["events.jsonl"])
                live: list[int] = []
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline or not live:
                    e = client.next_event(timeout=T)
                    if isinstance(e, ev.Metrics):
                        live += e.steps
            finally:
                client.close()
            steps = h.steps + live
            assert steps == list(range(1, steps[-1] + 1)), (h.steps[-3:], live[:3])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=T)
