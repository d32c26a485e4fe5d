"""`danlu ls`: the table a script reads (no process needed: run directories written by hand)."""

from __future__ import annotations

import json
import os
import time

from danlu.tui.cli.ls import ls


def _run(root, name, state, pid, step=None, total=100, best=None, losses=()):
    d = root / name
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"state": state, "pid": pid, "step": step, "total_steps": total,
                                              "best_val_loss": best, "updated": time.time()}))
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": x}) + "\n"
                                             for i, x in enumerate(losses)))
    return d


def test_ls_shows_state_step_loss_and_a_dead_running_run_as_crashed(tmp_path, capsys):
    _run(tmp_path, "live-1", "paused", os.getpid(), step=3, best=0.5, losses=[2.0, 1.5, 1.25, 1.125])
    _run(tmp_path, "dead-1", "running", 2 ** 22 + 4321, step=0, losses=[3.0])
    _run(tmp_path, "done-1", "finished", 1, step=100, best=0.25, losses=[0.5])
    assert ls(str(tmp_path)) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["live-1"][1:5] == ["paused", "4/100", "1.125", "0.5"]  # the step from metrics.jsonl, newer
    assert rows["live-1"][-1] == str(os.getpid())
    assert rows["dead-1"][1] == "crashed"
    assert rows["done-1"][1:5] == ["finished", "100/100", "0.5", "0.25"]


def test_ls_ages_a_live_run_by_its_last_metrics_line(tmp_path, capsys):
    """state.json changes at state changes and checkpoints; a live run writes metrics.jsonl every second or two."""
    d = _run(tmp_path, "live-1", "running", os.getpid(), step=3, losses=[2.0, 1.5, 1.25, 1.125])
    state = json.loads((d / "state.json").read_text())
    (d / "state.json").write_text(json.dumps({**state, "updated": time.time() - 3600}))
    assert ls(str(tmp_path)) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:6] == ["running", "4/100", "1.125", "-", "0s"]
