"""`danlu run` as a person runs it: in a real terminal (tmux, 80x24), keys sent, screen read back.

Skipped where tmux is missing. The session is always killed, pass or fail.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

DANLU = str(Path(sys.executable).parent / "danlu")
TINY_RUN = ["data.args.size=512", "data.args.image_size=16", "model.args.width=8",
            "data.num_workers=0", "run.device=cpu", "optim.lr=0.002", "schedule.name=none", "schedule.warmup_steps=0",
            "train.epochs=100", "train.eval_every=100000", "train.checkpoint_every=100000"]
T = 60.0  # deadlines: the CPU is shared, and torch loads in the engine thread


class Tmux:
    """One detached tmux session running one command; read with `screen()`, type with `keys()`."""

    def __init__(self, command: str, cwd: Path, size=(80, 24)):
        self.name = f"danlu-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # A server of its own (-L): never the user's, and no race with a shared default server
        # that is still exiting after the previous test's session ("server exited unexpectedly").
        self.tmux = ["tmux", "-L", self.name]
        self.rc_file = cwd / "rc.txt"
        # the shell stays a while after danlu exits, so its last message can be read off the pane
        wrapped = f"{command}; echo $? > {shlex.quote(str(self.rc_file))}; sleep 60"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(size[0]),
                        "-y", str(size[1]), "-c", str(cwd), wrapped], check=True)

    def screen(self) -> str:
        r = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                           capture_output=True, text=True)
        return r.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys],
                       check=True)

    def wait(self, predicate, what: str, timeout: float = T):
        """Poll the screen until `predicate(screen)` is truthy; fail with the screen shown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            value = predicate(screen)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; screen:\n{self.screen()}")

    def exit_code(self, timeout: float = T) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.rc_file.exists() and self.rc_file.read_text().strip():
                return int(self.rc_file.read_text())
            time.sleep(0.1)
        raise AssertionError(f"danlu did not exit within {timeout}s; screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def danlu_run(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in (DANLU, "run", *words))


def stepping(screen: str) -> bool:
    m = re.search(r"step (\d+)/\d+", screen)
    return "RUNNING" in screen and m is not None and int(m.group(1)) > 0


def test_run_pause_lr_save_quit(tmp_path):
    out = tmp_path / "runs"
    tmux = Tmux(danlu_run(*TINY_RUN, f"run.out_dir={out}"), tmp_path)
    try:
        tmux.wait(stepping, "RUNNING and a step count")
        (run_dir,) = out.iterdir()

        tmux.keys("Space")
        tmux.wait(lambda s: "PAUSED" in s, "PAUSED")

        tmux.keys("l")
        tmux.wait(lambda s: "Change learning rate" in s, "the LR dialog")
        tmux.keys("/2", literal=True)
        tmux.keys("Enter")
        tmux.wait(lambda s: "lr 0.002 → 0.001" in s, "the applied LR in the event log")

        tmux.keys("s")
        ckpts = run_dir / "checkpoints"
        tmux.wait(lambda s: list(ckpts.glob("step-*.pt")), "a checkpoint file")

        tmux.keys("q")
        tmux.wait(lambda s: "Save checkpoint and quit" in s, "the quit dialog")
        tmux.keys("Enter")
        assert tmux.exit_code() == 0
        assert (ckpts / "last.pt").is_file()
        tmux.wait(lambda s: "stopped at step" in s and "danlu run --resume" in s,
                  "the goodbye message in the shell")
    finally:
        tmux.kill()


def test_bad_data_root_shows_the_reason_and_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()  # a folder without the dataset's files (a missing one is refused before the dashboard)
    words = ["data.name=mnist", "data.root=empty", "data.args={}",
             "run.device=cpu", f"run.out_dir={tmp_path / 'runs'}"]
    tmux = Tmux(danlu_run(*words), tmp_path)
    try:
        screen = tmux.wait(lambda s: "FAILED" in s and "press q" in s and s, "FAILED")
        status = " ".join(screen.splitlines()[:3])  # the status line wraps a long reason
        assert "has no MNIST files" in status and "press q to quit" in status
        tmux.keys("q")
        tmux.wait(lambda s: "The run has ended" in s, "the quit dialog")
        tmux.keys("Enter")
        assert tmux.exit_code(timeout=10) == 2
        tmux.wait(lambda s: "danlu: data.root:" in s and "has no MNIST files" in s,
                  "the reason on stderr after exit")
    finally:
        tmux.kill()
