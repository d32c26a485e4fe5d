"""metrics.jsonl: the fast per-step writer must say exactly what json.dumps would."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from danlu.engine.store.runlog import RunLog

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _expected(s, e, loss, lr, norm, skipped):
    def clean(v):
        return None if not math.isfinite(v) else v
    rec = {"step": s, "epoch": e, "loss": clean(loss), "lr": clean(lr[0]), "lrs": [clean(x) for x in lr],
           "grad_norm": clean(norm)}
    if skipped:
        rec["amp_skipped"] = True
    return rec


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(floats, floats, st.lists(floats, min_size=1, max_size=3), st.booleans()),
                min_size=1, max_size=12))
def test_train_steps_lines_parse_to_the_values_written(tmp_path_factory, rows):
    run_dir = tmp_path_factory.mktemp("run")
    log = RunLog(run_dir)
    steps = list(range(100, 100 + len(rows)))
    epochs = [s // 5 for s in steps]
    losses = [r[0] for r in rows]
    norms = [r[1] for r in rows]
    lrs = [r[2] for r in rows]
    amp = {s for s, r in zip(steps, rows) if r[3]}
    log.train_steps(steps, epochs, losses, lrs, norms, amp)
    log.flush()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(rows)
    for line, s, e, loss, lr, norm in zip(lines, steps, epochs, losses, lrs, norms):
        # every line is strict JSON (no NaN/Infinity tokens) and round-trips the floats exactly
        got = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        assert got == _expected(s, e, loss, lr, norm, s in amp)


def test_metrics_reach_the_disk_within_a_second_or_two_and_at_a_state_change(tmp_path, monkeypatch):
    """`danlu ls` reads a live run's step from metrics.jsonl: the buffer must not hold it for long."""
    import time
    from types import SimpleNamespace

    from danlu.engine.store import runlog

    clock = [1000.0]
    monkeypatch.setattr(runlog, "time", SimpleNamespace(monotonic=lambda: clock[0], time=time.time))
    log = RunLog(tmp_path)
    path = tmp_path / "metrics.jsonl"

    def step(s):
        log.train_steps([s], [0], [1.0], [[0.1]], [1.0], set())

    step(1)
    clock[0] += 0.5
    step(2)
    assert path.stat().st_size == 0  # buffered: a write per flush of the trainer would cost the loop
    clock[0] += runlog.DISK_FLUSH_S
    step(3)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]
    step(4)
    assert len(path.read_text().splitlines()) == 3
    log.set_state(state="paused", step=4)  # a pause: no more writes for a while, the last steps go out now
    assert len(path.read_text().splitlines()) == 4
    log.close()
