"""Every bad input in docs/bad_inputs.md, tried for real: exit code 2, the documented message, no traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

BAD = REPO / "tests" / "fixtures" / "bad_configs"
TINY = ["data.num_workers=0", "run.device=cpu", "data.args.size=128", "data.args.image_size=16",
        "model.args.width=8", "data.batch_size=16", "train.max_steps=2"]


def _finished_run(tmp) -> str:
    out = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless", f"run.out_dir={tmp}/runs", *TINY],
                         capture_output=True, text=True, cwd=tmp, timeout=180)
    assert out.returncode == 0, out.stderr
    (run,) = (tmp / "runs").glob("default-*")
    return str(run)


def _truncated(tmp) -> list[str]:
    run = _finished_run(tmp)
    for p in (tmp / "runs").glob("default-*/checkpoints/*.pt"):
        p.write_bytes(p.read_bytes()[:300])
    return ["run", "--headless", "--resume", run]


NET = ("import math\nfrom torch import nn\nWIDTH = 8\ndef build(num_classes, input_shape):\n"
       "    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), WIDTH), nn.ReLU(),\n"
       "                         nn.Linear(WIDTH, num_classes))\n")


def _other_model(tmp) -> list[str]:
    (tmp / "net.py").write_text(NET)
    out = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless", f"run.out_dir={tmp}/runs",
                          *[w for w in TINY if not w.startswith("model.args")], "model.name=net.py:build"], capture_output=True, text=True, cwd=tmp, timeout=180)
    assert out.returncode == 0, out.stderr
    (tmp / "net.py").write_text(NET.replace("WIDTH = 8", "WIDTH = 12"))  # the model's code changed since
    (run,) = (tmp / "runs").glob("default-*")
    return ["run", "--headless", "--resume", str(run)]


def _resume_with_batch_size(tmp) -> list[str]:
    return ["run", "--headless", "--resume", _finished_run(tmp), "train.max_steps=4", "data.batch_size=32"]


def _empty_run_dir(tmp) -> list[str]:
    run = tmp / "runs" / "empty"
    run.mkdir(parents=True)
    shutil.copy(REPO / "configs" / "default.yaml", run / "config.yaml")
    return ["run", "--headless", "--resume", str(run)]


def _unwritable_out(tmp) -> list[str]:
    (tmp / "afile").write_text("not a folder")
    return ["run", "--headless", f"run.out_dir={tmp}/afile/runs", *TINY]


_LIVE: list[subprocess.Popen] = []  # processes a case started; ended after its command ran


def _live_run(tmp) -> list[str]:
    """A run another process is training: it holds the run's lock, as `danlu run` does."""
    run = tmp / "runs" / "live"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "default.yaml", run / "config.yaml")
    code = ("import fcntl, json, os, sys\n"
            f"fd = os.open({str(run / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, json.dumps({'pid': os.getpid()}).encode())\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    _LIVE.append(holder)
    assert holder.stdout.readline().strip() == "held"
    return ["run", "--headless", "--resume", str(run)]


def _regression_data(tmp) -> list[str]:
    (tmp / "reg.py").write_text("import torch\nfrom torch.utils.data import TensorDataset\n\n"
                                "def build():\n    x = torch.randn(256, 4)\n    return TensorDataset(x, x.sum(1) * 0.3)\n")
    return ["run", "--headless", "data.name=reg.py:build", "model.name=mlp", "data.num_workers=0", "run.device=cpu",
            f"run.out_dir={tmp}/runs"]


# id -> (argv, or a function of tmp_path giving it; the message the user must see)
CASES = {
    "missing-config": (["check", "no/such.yaml"], "config file not found: no/such.yaml"),
    "yaml-syntax": (["check", str(BAD / "yaml_syntax.yaml")], "line 3, column 12: YAML syntax error"),
    "python-tag": (["check", str(BAD / "python_tag.yaml")], "python tags like !!python/object are refused"),
    "unknown-key": (["check", str(BAD / "unknown_key.yaml")], "unknown key optim.learnig_rate, did you mean optim.lr?"),
    "duplicate-key": (["check", str(BAD / "duplicate_section.yaml")], "line 7: duplicate key 'optim' (also at line 2)"),
    "wrong-type": (["check", str(BAD / "wrong_type.yaml")], "train.epochs: must be a number, got 'three'"),
    "unknown-optimizer": (["check", "optim.name=adamx"], "optim.name: must be one of sgd, adam, adamw, rmsprop, adagrad, adadelta; got 'adamx'"),
    "unknown-scheduler": (["check", "schedule.name=cosin"], "Did you mean 'cosine'?"),
    "negative-lr": (["check", "optim.lr=-1"], "optim.lr: must be > 0, got -1 (from the command line: optim.lr=-1)"),
    "nan-lr": (["check", "optim.lr=.nan"], "optim.lr: must be a finite number, got nan"),
    "bad-profile-steps": (["check", "monitor.profile_steps=[0,5]"],
                          "monitor.profile_steps: must be [start, count], two whole numbers >= 1"),
    "bad-override": (["check", "optim.lr"], "is not key=value. Write it like optim.lr=3e-4"),
    "dataset-root-missing": (["run", "--headless", "data.name=mnist", "data.root=/nonexistent/mnist"],
                             "data.root: /nonexistent/mnist does not exist, so it has no mnist files. Set data.download=true"),
    "unwritable-out-dir": (_unwritable_out, "run.out_dir: cannot create"),
    "run-name-with-slash": (["run", "--headless", "run.name=a/b"], "run.name: 'a/b' holds '/'; it names one folder"),
    "batch-larger-than-data": (["check", "data.args.size=100", "data.batch_size=128"],
                               "data.batch_size: 128 x train.grad_accum 1 needs more samples than the training set has (90)"),
    "plateau-without-validation": (["check", "schedule.name=plateau", "data.val_fraction=0"],
                                   "this run has no validation set (data.val_fraction is 0), so the LR would never change"),
    "resume-dir-missing": (["run", "--headless", "--resume", "/nonexistent/run"], "is not a run directory"),
    "resume-dir-empty": (_empty_run_dir, "has no checkpoints"),
    "truncated-checkpoint": (_truncated, "truncated or corrupted"),
    "checkpoint-of-another-model": (_other_model, "the checkpoint is for a different model"),
    "resume-live-run": (_live_run, "is still running (pid"),
    "regression-targets": (_regression_data, "numbers to predict? Set train.loss=mse"),
    "resume-with-a-new-batch-size": (_resume_with_batch_size,
                                     "data.batch_size 16 → 32: it changes what one step sees"),
    "lambda-without-fn": (["check", "schedule.name=lambda"], "schedule.fn: the lambda schedule needs fn"),
    "lambda-fn-not-found": (["run", "--headless", "schedule.name=lambda", "schedule.fn=nosuchmod_xyz:f", *TINY],
                            "schedule.fn: cannot import module 'nosuchmod_xyz'"),
    "lr-find-backwards-sweep": (["lr-find", "--start", "1", "--end", "0.1"],
                                "lr-find: the sweep needs 0 < start < end"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_documented_message_and_exit_2(case, tmp_path):
    argv, needle = CASES[case]
    try:
        if callable(argv):
            argv = argv(tmp_path)
        out = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", *argv], capture_output=True, text=True,
                             cwd=tmp_path, timeout=180)
    finally:
        while _LIVE:
            proc = _LIVE.pop()
            proc.kill()
            proc.wait()
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.count("danlu: ") == 1  # said once, not echoed by the progress line


def test_docs_table_matches_the_cases():
    text = (REPO / "docs" / "bad_inputs.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \|.*\| `(.+)` \|$", text, flags=re.M)
    assert dict(rows) == {k: v[1] for k, v in CASES.items()}
