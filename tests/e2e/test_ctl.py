"""`danlu run --detach`, `danlu ctl`, `danlu ls` and run.on_hangup as a user runs them: real processes."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from danlu.engine.store.runlog import read_jsonl

from ..conftest import wait_until

DANLU = [sys.executable, "-m", "danlu.tui.cli.main"]
SMALL = ["data.args.size=512", "data.args.image_size=16", "model.args.width=8", "train.epochs=500",
         "data.batch_size=16", "data.num_workers=0"]


def danlu(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*DANLU, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_detach_then_ctl_pause_lr_resume_stop_then_ls(tmp_path):
    runs = tmp_path / "runs"
    up = danlu("run", "--detach", f"run.out_dir={runs}", *SMALL, cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    run_dir = Path(glob.glob(f"{runs}/default-*")[0])
    assert str(run_dir) in up.stdout and f"danlu attach {run_dir}" in up.stdout
    pid = json.loads((run_dir / "state.json").read_text())["pid"]
    try:
        assert os.getsid(pid) == pid  # its own session: the terminal's hangup never reaches it
        said = {}
        for action in (["pause"], ["lr", "x0.5"], ["resume"], ["set", "weight_decay=0.02"], ["profile", "2"],
                       ["freeze", r"^head\."], ["unfreeze", r"^head\.", "0.5"], ["stop"]):
            res = danlu("ctl", "default", *action, cwd=tmp_path)  # a name prefix under ./runs
            assert res.returncode == 0, res.stderr
            assert res.stdout.startswith("applied at step "), res.stdout
            said[action[0]] = res.stdout
        assert "→" in said["lr"] and "weight_decay" in said["set"]
        assert said["profile"].splitlines()[1].startswith("profiled steps ")  # waited for the result
        assert "trace profile/" in said["profile"]
        assert "2 tensors" in said["freeze"] and "2 tensors" in said["unfreeze"], said
        wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                   timeout=120)
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)
    kinds = [r["kind"] for r in read_jsonl(run_dir / "events.jsonl")]
    assert [k for k in kinds if k in ("pause", "set_lr", "resume", "set_hparam", "stop")] == \
        ["pause", "set_lr", "resume", "set_hparam", "stop"]
    assert all(r.get("by_pid") for r in read_jsonl(run_dir / "events.jsonl") if r["kind"] == "set_lr")
    assert (run_dir / "checkpoints" / "last.pt").exists() and (run_dir / "output.log").is_file()
    assert not (run_dir / "control.sock").exists()
    listed = danlu("ls", str(runs))
    assert listed.returncode == 0
    header, line = listed.stdout.splitlines()[:2]
    assert header.split() == ["name", "state", "step", "loss", "best_val", "age", "pid"]
    assert line.split()[:2] == [run_dir.name, "stopped"] and line.split()[-1] == str(pid)
    gone = danlu("ctl", str(run_dir), "pause")
    assert gone.returncode == 2 and "not running" in gone.stderr


def test_ctl_refuses_bad_values_before_sending_and_rejected_exits_1(tmp_path):
    bad = danlu("ctl", "nothing-here", "lr", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "learning rate must be > 0" in bad.stderr
    bad = danlu("ctl", "nothing-here", "set", "momentum=7", cwd=tmp_path)
    assert bad.returncode == 2 and "momentum" in bad.stderr
    for words, said in ((["profile", "0"], "steps must be from 1 to 1000"), (["profile", "x"], "whole number"),
                        (["freeze", "("], "not a valid regex"), (["unfreeze", "x", "-2"], "lr_mult must be")):
        bad = danlu("ctl", "nothing-here", *words, cwd=tmp_path)
        assert bad.returncode == 2 and said in bad.stderr, (words, bad.stderr)
    missing = danlu("ctl", "nothing-here", "pause", cwd=tmp_path)
    assert missing.returncode == 2 and "no run 'nothing-here'" in missing.stderr, missing.stderr
    runs = tmp_path / "runs"
    assert danlu("run", "--detach", f"run.out_dir={runs}", *SMALL, cwd=tmp_path).returncode == 0
    run_dir = Path(glob.glob(f"{runs}/default-*")[0])
    try:
        res = danlu("ctl", str(run_dir), "resume")  # not paused
        assert res.returncode == 1 and res.stdout.startswith("rejected at step ") and "not paused" in res.stdout
    finally:
        assert danlu("ctl", str(run_dir), "stop").returncode == 0


def test_ctl_messages_say_what_to_type_and_where_it_looked(tmp_path):
    """No run needed: usage, did-you-mean, one prefix per line, the folder named."""
    bare = danlu("ctl", "default", cwd=tmp_path)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: danlu ctl RUN ACTION [VALUE ...]\n")
    assert "actions: pause | resume | save | stop | eval | lr VALUE" in bare.stderr
    typo = danlu("ctl", "default", "paus", cwd=tmp_path)
    assert typo.returncode == 2 and "unknown action 'paus'; did you mean pause?" in typo.stderr
    swapped = danlu("ctl", "pause", "default", cwd=tmp_path)
    assert swapped.returncode == 2 and "danlu ctl default pause" in swapped.stderr
    bad = danlu("ctl", "default", "lr", "abc", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("danlu ctl lr: 'abc' is not a number")
    zero = danlu("ctl", "default", "lr", "0", cwd=tmp_path)
    assert "pause instead: danlu ctl RUN pause" in zero.stderr and "(space)" not in zero.stderr  # no dashboard key
    alias = danlu("ctl", "default", "set", "wd=0.1", cwd=tmp_path)
    assert alias.returncode == 2 and "did you mean weight_decay?" in alias.stderr
    for res in (typo, bad, alias):
        assert res.stderr.count("danlu") == 1 and " ctl lr: ctl" not in res.stderr, res.stderr
    nowhere = danlu("ctl", "default", "pause", cwd=tmp_path)
    assert nowhere.returncode == 2 and f"there is no folder {tmp_path / 'runs'}" in nowhere.stderr
    (tmp_path / "runs").mkdir()
    missing = danlu("ctl", "default", "pause", cwd=tmp_path)
    assert missing.returncode == 2 and f"no run 'default' in {tmp_path / 'runs'}" in missing.stderr


def test_detach_with_a_bad_config_exits_2_and_leaves_nothing(tmp_path):
    runs = tmp_path / "runs"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    res = danlu("run", "--detach", f"run.out_dir={runs}", "optim.lr=-1", cwd=tmp_path)
    assert res.returncode == 2 and "optim.lr: must be > 0" in res.stderr
    assert not runs.exists() or not any(runs.iterdir())
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_headless_hangup_continues_into_output_log(short_tmp):
    """SIGHUP to a headless run (run.on_hangup: continue, the default): it goes on, output to output.log."""
    tmp_path = short_tmp  # its control.sock in the run directory
    proc = subprocess.Popen([*DANLU, "run", "--headless", f"run.out_dir={tmp_path}", *SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = Path(wait_until(lambda: glob.glob(f"{tmp_path}/*/control.sock"), timeout=120)[0]).parent
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(r["kind"] == "hangup" for r in read_jsonl(run_dir / "events.jsonl")), timeout=60)
        rec = next(r for r in read_jsonl(run_dir / "events.jsonl") if r["kind"] == "hangup")
        assert rec["action"] == "continue" and rec["output"].endswith("output.log")
        step = rec["step"]
        res = danlu("ctl", str(run_dir), "pause")
        assert res.returncode == 0 and proc.poll() is None  # still training, still steerable
        applied = int(res.stdout.split("step ")[1].split(":")[0])
        assert applied > step
        assert danlu("ctl", str(run_dir), "stop").returncode == 0
        assert proc.wait(timeout=120) == 0
        time.sleep(0.1)
        assert "stopped at step" in (run_dir / "output.log").read_text()  # the closing words went to the file
    finally:
        if proc.poll() is None:
            proc.kill()
