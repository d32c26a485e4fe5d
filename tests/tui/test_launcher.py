"""The launcher: configs and runs found in the working directory, with their states; Enter, e, n."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from danlu.engine.config.schema import PACKAGED_CONFIGS
from danlu.tui.editor_app import Outcome, create_launcher_app
from danlu.tui.run_index import age, scan_configs, scan_runs
from danlu.tui.screens.editor import EditorScreen
from danlu.tui.screens.launcher import NewConfigDialog

from .conftest import wait_for

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: ages in these tests never depend on the wall clock
LIVE_PID, DEAD_PID = 4242, 4343


def alive(pid: int) -> bool:
    return pid == LIVE_PID


def flat_preview(schedule, lr, spe, total):
    return [lr] * total


def make_run(root: Path, name: str, **state) -> Path:
    d = root / "runs" / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.yaml").write_text("run: {name: x}\n")
    (d / "state.json").write_text(json.dumps(state))
    return d


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(PACKAGED_CONFIGS / "default.yaml", tmp_path / "configs" / "baseline.yaml")
    (tmp_path / "configs" / "sgd.yaml").write_text("# plain SGD, for comparison\noptim: {name: sgd, lr: 0.1}\n")
    make_run(tmp_path, "baseline-20260101-000000", state="finished", step=336, total_steps=336,
             best_val_loss=0.4123, updated=NOW - 3 * 3600, pid=DEAD_PID)
    make_run(tmp_path, "sgd-20260101-010000", state="running", step=120, total_steps=400,
             best_val_loss=0.9, updated=NOW - 30, pid=LIVE_PID)
    make_run(tmp_path, "sgd-20251231-230000", state="running", step=57, total_steps=400,
             updated=NOW - 2 * 86400, pid=DEAD_PID)
    return tmp_path


def test_scan_finds_configs_and_run_states(workdir):
    configs = scan_configs(workdir)
    local = [c.name for c in configs if not c.packaged]
    assert local == ["baseline", "sgd"]
    assert any(c.packaged and c.name == "default" for c in configs)
    assert next(c for c in configs if c.name == "sgd").about == "plain SGD, for comparison"
    runs = scan_runs(workdir / "runs", alive)
    assert [(r.name, r.state) for r in runs] == [
        ("sgd-20260101-010000", "running"),
        ("baseline-20260101-000000", "finished"),
        ("sgd-20251231-230000", "crashed"),  # 'running' but its process is gone
    ]
    assert age(45) == "45s" and age(3 * 3600 + 5) == "3h" and age(None) == "–"


def _rows(table) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_launcher_lists_and_refreshes(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        runs = app.screen.query_one("#runs")
        await wait_for(pilot, lambda: runs.row_count == 3, what="runs listed")
        assert _rows(runs)[0] == ["sgd-20260101-010000", "running", "120/400", "0.9", "30s ago"]
        assert _rows(runs)[2][1] == "crashed"
        configs = app.screen.query_one("#configs")
        assert [r[0] for r in _rows(configs)][:2] == ["baseline", "sgd"]
        # a run that appears later shows up without a key press (timer)
        make_run(workdir, "new-20260101-020000", state="running", step=3, total_steps=10,
                 updated=NOW - 1, pid=LIVE_PID)
        await wait_for(pilot, lambda: runs.row_count == 4, timeout=10, what="timer refresh")
        assert _rows(runs)[0][0] == "new-20260101-020000"


async def test_live_runs_come_first_and_the_title_says_what_enter_does(workdir):
    # paused for days: its state.json is older than every finished run's, and it is still the one to attach to
    make_run(workdir, "old-live-20250101-000000", state="paused", step=9, total_steps=400,
             updated=NOW - 5 * 86400, pid=LIVE_PID)
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        runs = app.screen.query_one("#runs")
        await wait_for(pilot, lambda: runs.row_count == 4, what="runs listed")
        assert [r[0] for r in _rows(runs)] == ["sgd-20260101-010000", "old-live-20250101-000000",
                                              "baseline-20260101-000000", "sgd-20251231-230000"]
        title = str(app.screen.query_one("#launcher-title").render())
        assert "Enter: run, attach or resume" in title


async def test_a_live_runs_step_comes_from_its_metrics_not_its_last_checkpoint(workdir):
    """state.json holds the step of the last state change or checkpoint; metrics.jsonl every step."""
    d = workdir / "runs" / "sgd-20260101-010000"
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 158)))
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        runs = app.screen.query_one("#runs")
        await wait_for(pilot, lambda: runs.row_count == 3, what="runs listed")
        assert _rows(runs)[0][:3] == ["sgd-20260101-010000", "running", "157/400"]
        assert _rows(runs)[1][2] == "336/336"  # a finished run: as its state.json says


async def test_enter_runs_a_config(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.return_value is not None, what="exit")
    assert app.return_value == Outcome("run", "configs/sgd.yaml")


async def test_enter_attaches_to_a_live_run(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#runs").focus()
        await pilot.press("enter")  # the live run: its dashboard, never a second trainer
        await wait_for(pilot, lambda: app.return_value is not None, what="exit")
    assert app.return_value == Outcome("attach", str(workdir / "runs" / "sgd-20260101-010000"))


async def test_enter_resumes_a_crashed_run(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#runs").focus()
        await pilot.press("down", "down", "enter")
        await wait_for(pilot, lambda: app.return_value is not None, what="exit")
    assert app.return_value == Outcome("resume", str(workdir / "runs" / "sgd-20251231-230000"))


async def test_e_edits_and_n_makes_a_new_config(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive, preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        assert str(app.screen.path) == "configs/baseline.yaml"
        await pilot.press("escape")  # unchanged: closes at once, back to the launcher
        await wait_for(pilot, lambda: app.screen.id == "launcher", what="launcher again")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewConfigDialog), what="new dialog")
        await pilot.press(*"lr-sweep", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor on the new file")
        assert str(app.screen.path) == "configs/lr-sweep.yaml"
    assert (workdir / "configs" / "lr-sweep.yaml").read_text() == (PACKAGED_CONFIGS / "default.yaml").read_text()


def test_cli_acts_on_the_outcome(monkeypatch):
    from danlu.tui.cli import main as cli
    seen = []
    monkeypatch.setattr(cli, "_run", lambda args: seen.append((args.words, args.resume, args.headless)) or 0)
    assert cli._after(None) == 0 and seen == []
    cli._after(Outcome("run", "configs/sgd.yaml"))
    cli._after(Outcome("resume", "runs/x"))
    assert seen == [(["configs/sgd.yaml"], None, False), ([], "runs/x", False)]


# --- configs that would not run ----------------------------------------------------------

BROKEN_YAML = "run:\n  name: broken\n  seed: [1, 2\noptim: {lr: 1}\n"   # the list never closes
TWO_PROBLEMS = "# two mistakes\noptim:\n  lr: -1\n  lrr: 3\n"


def test_check_config_says_why_and_is_cached_by_mtime(tmp_path):
    import os
    from danlu.tui.run_index import check_config
    p = tmp_path / "c.yaml"
    p.write_text(BROKEN_YAML)
    first = check_config(p)
    assert not first.ok and first.yaml_error and first.summary == "YAML error, line 4"
    assert first.problems[0].startswith("line 4, column 6: YAML syntax error")
    assert check_config(p) is first  # unchanged file: not parsed again
    p.write_text(TWO_PROBLEMS)
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    second = check_config(p)
    assert second.summary == "2 problems" and not second.yaml_error
    assert second.problems == ("line 3: optim.lr: must be > 0, got -1",
                               "line 4: unknown key optim.lrr, did you mean optim.lr?")
    assert check_config(tmp_path / "gone.yaml").summary == "cannot read"
    assert check_config(PACKAGED_CONFIGS / "default.yaml").ok


def _check_cells(screen) -> dict[str, str]:
    table = screen.query_one("#configs")
    return {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[2]) for i in range(table.row_count)}


def _problems_shown(app) -> bool:
    return app.screen.id == "config-problems-dialog"


async def test_broken_configs_are_marked_and_enter_explains_without_leaving(workdir):
    (workdir / "configs" / "a-broken.yaml").write_text(BROKEN_YAML)
    (workdir / "configs" / "b-twice.yaml").write_text(TWO_PROBLEMS)
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive, preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "…" not in _check_cells(screen).values(), what="configs checked")
        await pilot.pause()
        cells = _check_cells(screen)
        assert cells["a-broken"] == "✗ YAML error, line 4" and cells["b-twice"] == "✗ 2 problems"
        assert cells["baseline"] == "ok" and cells["default"] == "ok"
        await pilot.press("enter")  # a-broken is first: the reason, in the launcher
        await wait_for(pilot, lambda: _problems_shown(app) or not app.is_running, what="problems dialog")
        assert app.is_running and _problems_shown(app), app.return_value
        text = str(app.screen.query_one("#problems-text").render())
        assert "line 4, column 6: YAML syntax error" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back in the launcher")
        assert app.is_running and app.return_value is None
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: _problems_shown(app), what="dialog for b-twice")
        assert "unknown key optim.lrr" in str(app.screen.query_one("#problems-text").render())
        await pilot.press("up")  # stays in the dialog
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="launcher")
        await pilot.press("up", "enter")
        await wait_for(pilot, lambda: _problems_shown(app), what="dialog again")
        await pilot.press("e")  # to the editor; a YAML error opens the raw view
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        assert str(app.screen.path) == "configs/a-broken.yaml" and app.screen.view == "raw"
        # fixed outside (or in the editor): back in the launcher the mark is gone, Enter runs it
        (workdir / "configs" / "a-broken.yaml").write_text(BROKEN_YAML.replace("[1, 2", "1"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="launcher again")
        await wait_for(pilot, lambda: _check_cells(screen)["a-broken"] == "ok", what="mark cleared")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_value is not None, what="exit to run")
    assert app.return_value == Outcome("run", "configs/a-broken.yaml")


async def test_a_config_broken_after_listing_is_caught_on_enter(workdir):
    app = create_launcher_app(workdir, clock=lambda: NOW, alive=alive)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "…" not in _check_cells(screen).values(), what="configs checked")
        (workdir / "configs" / "baseline.yaml").write_text(BROKEN_YAML)
        await pilot.press("enter")
        await wait_for(pilot, lambda: _problems_shown(app), what="problems dialog")
        assert app.is_running and app.return_value is None
        assert _check_cells(screen)["baseline"] == "✗ YAML error, line 4"
