"""The command line as a user meets it: exit codes, messages without tracebacks, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, wait_until

BAD = REPO / "tests" / "fixtures" / "bad_configs"
FAST = ["data.num_workers=0", "run.device=cpu", "data.args.size=256", "data.args.image_size=16",
        "model.args.width=8", "data.batch_size=16"]


def danlu(*args, cwd=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_check_prints_resolved_config():
    out = danlu("check", "optim.name=sgd", "optim.momentum=0.9")
    assert out.returncode == 0, out.stderr
    assert "name: sgd" in out.stdout and "momentum: 0.9" in out.stdout and "nesterov: false" in out.stdout


@pytest.mark.parametrize("words,needle", [
    ([str(BAD / "many_problems.yaml")], "5 config problems"),
    ([str(BAD / "yaml_syntax.yaml")], "YAML syntax error"),
    (["missing.yaml"], "config file not found"),
    (["optim.lr"], "is not key=value"),
])
def test_bad_input_exits_2_without_traceback(words, needle):
    out = danlu("check", *words)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("words,needle", [
    (["run.name=a/b"], "run.name: 'a/b' holds '/'"),
    (["model.name=nets/missing.py:build"], "model.name: file 'nets/missing.py' not found"),
    (["data.name=image_folder", "data.root=nowhere"], "data.root: nowhere is not a folder"),
    (["model.args.depth=3"], "model.args.depth: small_cnn does not take it"),
])
def test_check_refuses_what_run_would_refuse(words, needle, tmp_path):
    for command in (["check"], ["run", "--headless"]):
        out = danlu(*command, f"run.out_dir={tmp_path}/runs", *words, cwd=tmp_path)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_torchvision_model_too_big_for_the_images_is_a_message(tmp_path):
    """Found by the probe batch before step 1: exit 2 naming the model, the inputs and the knob."""
    out = danlu("run", "--headless", f"run.out_dir={tmp_path}/runs", "model.name=squeezenet1_1",
                "data.args.image_size=8", cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "model.name: squeezenet1_1 cannot take this data's inputs (float32 (8, 3, 8, 8))" in out.stderr
    assert "data.args.image_size" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("words,warning", [
    (["train.max_steps=30"],  # the packaged config warms up for 50 steps
     "schedule.warmup_steps=50 is as long as the run (30 steps) or longer: the LR never reaches optim.lr"),
    (["schedule.name=step", "schedule.step_size=5", "train.epochs=3"],
     "schedule.step_size: the first decay comes after epoch 5, but the run has 3 epochs: the LR never decays"),
    (["schedule.name=plateau", "train.eval_every=5000"],
     "train.eval_every=5000: the run (336 steps) evaluates only at its end, so plateau never lowers the LR"),
])
def test_check_warns_about_setups_that_make_no_sense(words, warning):
    out = danlu("check", *words)
    assert out.returncode == 0, out.stderr
    assert f"# warning: {warning}" in out.stdout


def test_headless_run_writes_run_dir(tmp_path):
    out = danlu("run", "--headless", f"run.out_dir={tmp_path}", "train.max_steps=6", *FAST, cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "finished" in out.stdout
    (run,) = list(tmp_path.glob("default-*"))
    assert (run / "checkpoints" / "last.pt").exists()


def test_warm_start_from_the_command_line_starts_a_new_run_from_the_old_ones_weights(tmp_path):
    out = danlu("run", "--headless", f"run.out_dir={tmp_path}", "train.max_steps=4", *FAST, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (old,) = tmp_path.glob("default-*")
    out = danlu("run", "--headless", "--warm-start", str(old), "data.batch_size=8", "train.max_steps=7", cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "warm start from" in out.stdout and "finished at step 7" in out.stdout
    (new,) = [d for d in tmp_path.glob("default-*") if d != old]
    text = (new / "config.yaml").read_text()
    assert f"parent: {old.resolve()}" in text and "parent_step: 4" in text and "batch_size: 8" in text
    assert "width: 8" in text  # the old run's config is the base: its overrides carry over


def test_resume_of_missing_dir_exits_2(tmp_path):
    out = danlu("run", "--headless", "--resume", str(tmp_path / "nope"))
    assert out.returncode == 2 and "not a run directory" in out.stderr and "Traceback" not in out.stderr


def test_ctrl_c_saves_and_prints_resume_command(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "danlu.tui.cli.main", "run", "--headless",
                             f"run.out_dir={tmp_path}", "train.epochs=200", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: list(tmp_path.glob("default-*/metrics.jsonl"))
                   and list(tmp_path.glob("default-*/metrics.jsonl"))[0].stat().st_size > 0, timeout=120)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "resume with: danlu run --resume" in out
    (run,) = list(tmp_path.glob("default-*"))
    assert (run / "checkpoints" / "last.pt").exists()
    # and the printed command works (made short: two more steps)
    import json
    step = json.loads((run / "state.json").read_text())["step"]
    res = danlu("run", "--headless", "--resume", str(run), f"train.max_steps={step + 2}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"finished at step {step + 2}" in res.stdout


@pytest.mark.parametrize("fault, code, words, saved", [
    ("nan", 3, "stopped on a fault at step 3: non-finite loss (nan) at step 3 (nan_policy=stop)",
     "no checkpoint at step 3; the last good one is {ck}/step-0000002.pt (step 2)"),
    ("oom", 3, "stopped on a fault at step 2: out of memory at step 3 (batch 16)",
     "fault checkpoint saved: {ck}/step-0000002-fault.pt (step 2)"),
    ("crash", 1, "the run failed: ValueError: bug in the user's model (injected)",
     "last good checkpoint: {ck}/step-0000002.pt (step 2)"),  # it holds all the work: no crash file
])
def test_headless_fault_exit_codes_and_closing_words(tiny_config, fault, code, words, saved):
    """What `danlu run --headless` returns and prints last: a fault is not a success."""
    import io
    from danlu.tui.cli.headless import run_headless
    model = {"name": str(REPO / "tests" / "engine" / "faulty_model.py") + ":build",
             "args": {"fault": fault, "at": 3, "once": False}}
    cfg = tiny_config({"model": model, "monitor": {"nan_policy": "stop", "log_every": 1},
                       "train": {"max_steps": 10, "checkpoint_every": 1}})
    out = io.StringIO()
    assert run_headless(cfg, stream=out) == code
    (run,) = (Path(cfg.run.out_dir)).glob("t-*")
    closing = out.getvalue().rstrip().splitlines()[-3:]
    assert closing == [words, saved.format(ck=run / "checkpoints"),
                       f"after fixing the cause, resume with: danlu run --resume {run}"], out.getvalue()


CONFIG = str(REPO / "configs" / "default.yaml")


@pytest.mark.parametrize("argv", [
    ["run", CONFIG, "--headless", "train.max_steps=5", "optim.lr=1e-3"],       # overrides after an option
    ["run", "train.max_steps=5", "--headless", CONFIG, "optim.lr=1e-3"],       # the config after one
    ["run", CONFIG, "train.max_steps=5", "--headless", "optim.lr=1e-3"],
    ["check", CONFIG, "train.max_steps=5", "optim.lr=1e-3"],
    ["check", "train.max_steps=5", "optim.lr=1e-3", CONFIG],
    ["lr-find", CONFIG, "--steps", "20", "train.max_steps=5", "optim.lr=1e-3"],
    ["lr-find", "train.max_steps=5", "--steps", "20", "optim.lr=1e-3", CONFIG],
])
def test_overrides_are_the_same_wherever_they_stand_among_the_options(argv):
    from danlu.tui.cli.main import build_parser, parse_args, split_words
    args = parse_args(build_parser(), argv)
    assert split_words(args.words) == (CONFIG, ["train.max_steps=5", "optim.lr=1e-3"])
    assert getattr(args, "headless", True) and getattr(args, "steps", 20) == 20


def test_an_unknown_option_is_refused_by_its_command_with_a_did_you_mean(capsys):
    from danlu.tui.cli.main import build_parser, parse_args
    with pytest.raises(SystemExit) as e:
        parse_args(build_parser(), ["run", CONFIG, "--headles", "train.max_steps=5", "--detatch"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage: danlu run" in err and "unrecognized arguments: --detatch (did you mean --detach?)" in err


def test_check_with_overrides_after_the_config_and_a_reader_that_has_gone(tmp_path):
    out = danlu("check", CONFIG, "train.max_steps=5")
    assert out.returncode == 0 and "max_steps: 5" in out.stdout, out.stderr
    # `danlu ls | head -1`, `danlu check | true`: the reader closes the pipe; no traceback, exit 141
    (tmp_path / "runs" / "a-1").mkdir(parents=True)
    (tmp_path / "runs" / "a-1" / "state.json").write_text('{"state": "finished", "step": 5}')
    for argv in (["ls"], ["check", CONFIG]):
        r, w = os.pipe()
        os.close(r)
        try:
            res = subprocess.run([sys.executable, "-m", "danlu.tui.cli.main", *argv], stdout=w,
                                 stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
        finally:
            os.close(w)
        assert res.returncode == 141 and res.stderr == "", (argv, res.stderr)


@pytest.mark.parametrize("command,usage", [
    ("run", "usage: danlu run [CONFIG] [key=value ...] [--headless]"),
    ("check", "usage: danlu check [CONFIG] [key=value ...]\n"),
    ("lr-find", "usage: danlu lr-find [CONFIG] [key=value ...] [--start START]"),
    ("ctl", "usage: danlu ctl RUN ACTION [VALUE ...]\n"),
])
def test_usage_lines_say_config_then_overrides_once(command, usage):
    """argparse wrote '[[CONFIG] [key=value ...] ...]' for the words, and '[RUN] [ACTION]' for ctl."""
    from danlu.tui.cli.main import _subparser, build_parser
    text = _subparser(build_parser(), command).format_usage()
    assert text.startswith(usage) and "...]  ...]" not in text and "[[" not in text
