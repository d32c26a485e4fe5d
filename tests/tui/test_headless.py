"""The headless progress line on a terminal: rewritten in place, never left stale after the last words."""

from __future__ import annotations

import io
import random

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.tui.cli.headless import ProgressLine, _drain

from .fake_engine import metrics


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_stale_progress_line_after_the_last_message():
    out = Tty()
    progress, ch = ProgressLine(out), Channel()
    rnd = random.Random(0)
    ch.emit(metrics(0, 10, rnd))
    _drain(ch, progress)
    progress.show()
    assert "step 10/2000" in out.getvalue()
    # the run's end arrives in one drain: its last numbers, the stop, and the checkpoint
    ch.emit(metrics(10, 5, rnd))
    ch.emit(ev.StatusChanged("stopping", 15, "a signal asked to stop; saving a checkpoint first"))
    ch.emit(ev.StatusChanged("saving", 15))
    ch.emit(ev.StatusChanged("stopping", 15))  # the save on the way out passes through the state again
    ch.emit(ev.CheckpointSaved(15, "runs/x/checkpoints/last.pt", "last"))
    _drain(ch, progress)
    progress.show()
    progress.close()
    progress.message("stopped at step 15")
    text = out.getvalue()
    tail = text[text.index("checkpoint (last)"):]
    assert "step 15/2000" not in tail and "it/s" not in tail  # no progress line after the checkpoint line
    assert tail.rstrip().endswith("stopped at step 15")
    assert "stopping: a signal asked to stop; saving a checkpoint first..." in text
    assert text.count("stopping:") == 1


def test_a_profile_result_is_one_summary_line_with_the_trace_path():
    from .fake_engine import profile_done
    out = io.StringIO()
    progress, ch = ProgressLine(out), Channel()
    ch.emit(profile_done(3, 5))
    _drain(ch, progress)
    line, = out.getvalue().splitlines()
    assert line.startswith("[profile] profiled steps 3-7: top aten::convolution_backward")
    assert "data loading 12% of step time" in line
    assert line.endswith("trace runs/demo-20250101-000000/profile/steps-3-7.json")
