"""`danlu lr-find`: the range test before a run, its table and plot, --apply, and bad input."""

from __future__ import annotations

import json

import pytest

from danlu.tui.cli.main import main

from .test_cli import FAST

CONFIG = """\
# my experiment
optim:
  name: sgd
  lr: 0.1          # a guess
  momentum: 0.9
model:
  name: small_cnn
train:
  grad_clip: null
"""


def test_lr_find_prints_the_curve_saves_json_and_applies_keeping_comments(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "res.json"
    code = main(["lr-find", str(cfg), *FAST, f"run.out_dir={tmp_path}", "--start", "1e-4", "--end", "10",
                 "--steps", "30", "--out", str(out), "--apply"])
    printed = capsys.readouterr().out
    assert code == 0
    data = json.loads(out.read_text())
    assert len(data["lrs"]) == len(data["losses"]) >= 10 and data["lrs"][0] == pytest.approx(1e-4)
    assert data["suggestion"] and data["rule"].startswith("steepest descent")
    assert "suggested lr:" in printed and "min/10:" in printed and "lr (log scale)" in printed
    assert "steepest descent" in printed  # the rule is named
    text = cfg.read_text()
    import yaml
    assert yaml.safe_load(text)["optim"]["lr"] == pytest.approx(data["suggestion"], rel=1e-2)
    assert "# my experiment" in text and "# a guess" in text  # comments kept
    assert "lr: 0.1 " not in text


@pytest.mark.parametrize("args, needle", [
    (["--start", "1", "--end", "0.1"], "0 < start < end"),
    (["--steps", "3"], "at least 10 steps"),
    (["--apply"], "name one"),
    (["missing.yaml"], "config file not found"),
])
def test_bad_input_is_a_message_and_exit_2(args, needle, capsys):
    code = main(["lr-find", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_an_unwritable_out_is_a_message_not_a_traceback(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["lr-find", *FAST, "--start", "1e-4", "--end", "1", "--steps", "10",
                 "--out", str(blocker / "res.json")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write" in err and "Give another --out" in err
