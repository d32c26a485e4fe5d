"""Signals and lost terminals: the run saves at a step boundary and ends cleanly, nothing left spinning."""

from __future__ import annotations

import glob
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ..conftest import wait_until

DANLU = [sys.executable, "-m", "danlu.tui.cli.main"]
SMALL = ["data.args.size=512", "data.args.image_size=16", "model.args.width=8", "train.epochs=500",
         "data.batch_size=16"]


def _metrics_started(out: Path) -> bool:
    files = glob.glob(f"{out}/*/metrics.jsonl")
    return bool(files) and os.path.getsize(files[0]) > 0


def _children_gone(pid_list) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pid_list)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_headless_signal_saves_and_exits_0(tmp_path, sig):
    # SIGHUP stops only with run.on_hangup: stop (the default, continue, is tested in test_hangup.py)
    proc = subprocess.Popen([*DANLU, "run", "--headless", f"run.out_dir={tmp_path}", "data.num_workers=2", *SMALL,
                             "run.on_hangup=stop"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _metrics_started(tmp_path), timeout=120)
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "resume with: danlu run --resume" in out
    said = out.index("stopping: a signal asked to stop; saving a checkpoint first")
    assert said < out.index("checkpoint (last)")
    assert glob.glob(f"{tmp_path}/*/checkpoints/last.pt")
    wait_until(lambda: _children_gone(workers), timeout=20)  # no DataLoader worker left behind
    events = Path(glob.glob(f"{tmp_path}/*/events.jsonl")[0]).read_text()
    assert '"reason": "signal"' in events


SLOW_MODEL = """
import time
import torch

class Slow(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 16 * 16, num_classes)

    def forward(self, x):
        if self.training:
            time.sleep(1.0)  # a slow step: the first Ctrl-C waits for its end
        return self.fc(x.flatten(1))

def build(num_classes, **unused):  # SMALL's model.args are for small_cnn
    return Slow(num_classes)
"""


def test_second_ctrl_c_exits_at_once(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    proc = subprocess.Popen([*DANLU, "run", "--headless", f"run.out_dir={tmp_path}", "data.num_workers=0", *SMALL,
                             f"model.name={tmp_path}/slow.py:build", "train.checkpoint_every=2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: proc.poll() is not None or glob.glob(f"{tmp_path}/*/checkpoints/step-*.pt"), timeout=120)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)  # inside the next (1 s) step, whose end the first Ctrl-C waits for
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)  # taken by then (two back to back can reach Python as one), and the step is not over
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out  # the second one does not wait for the step boundary
    assert "second Ctrl-C: exiting now" in out
    saved = glob.glob(f"{tmp_path}/*/checkpoints/*.pt")
    assert saved and not glob.glob(f"{tmp_path}/*/checkpoints/last.pt")  # it left before the stop's save
    import torch
    for p in saved:  # leaving at once never leaves a half-written file under a checkpoint's name
        assert torch.load(p, weights_only=True)["step"] > 0


def test_dashboard_survives_its_terminal_going_away(tmp_path):
    """A dropped SSH session: the pty closes under the dashboard; training goes on (run.on_hangup:
    continue), its output in output.log; SIGTERM then saves and ends it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: danlu run with the dashboard in the pty
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [*DANLU, "run", f"run.out_dir={tmp_path}", "data.num_workers=2", *SMALL])
    buf = b""
    deadline = time.monotonic() + 120
    trainer = None
    try:
        while time.monotonic() < deadline and not (b"RUNNING" in buf and _metrics_started(tmp_path)):
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
        assert _metrics_started(tmp_path), buf[-2000:]
        (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        trainer = psutil.Process(json.loads((run_dir / "state.json").read_text())["pid"])
        workers = [c.pid for c in trainer.children(recursive=True)]
        os.close(fd)  # the terminal goes away
        _, status = os.waitpid(pid, 0)  # the process that held the terminal leaves at once...
        assert os.waitstatus_to_exitcode(status) == 0
        wait_until(lambda: "hangup" in (run_dir / "events.jsonl").read_text(), timeout=30)
        size = (run_dir / "metrics.jsonl").stat().st_size
        wait_until(lambda: (run_dir / "metrics.jsonl").stat().st_size > size, timeout=60)  # ...training goes on
        assert trainer.is_running()
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(60)
    finally:
        for p in (pid, trainer.pid if trainer is not None else None):
            try:
                if p is not None:
                    os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    assert glob.glob(f"{tmp_path}/*/checkpoints/last.pt")
    assert "stopped at step" in (run_dir / "output.log").read_text()
    wait_until(lambda: _children_gone(workers), timeout=20)