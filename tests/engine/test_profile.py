"""The profiler: a window of steps recorded with torch.profiler, a trace that opens, the run unharmed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from danlu.engine.control import events as ev
from danlu.engine.errors import ConfigError

from .helpers import of_type, run_trainer

SLOW_DATA = str(Path(__file__).with_name("slow_data.py")) + ":build"


def _weights(t):
    return [p.detach().clone() for p in t.model.parameters()]


def test_profile_command_writes_a_trace_and_the_run_goes_on_unharmed(tiny_config):
    cfg = lambda: tiny_config({"train": {"max_steps": 12}})  # noqa: E731
    plain, _ = run_trainer(cfg())
    t, ch = run_trainer(cfg(), {2: [ev.profile(3)]})

    assert t.final_state == ev.State.FINISHED and t.step == plain.step == 12
    # the profiler only watches: the weights are those of the run that was not profiled
    assert all(torch.equal(a, b) for a, b in zip(_weights(t), _weights(plain)))

    applied = [e for e in of_type(ch.seen, ev.CommandApplied) if e.kind == ev.CommandKind.PROFILE]
    assert applied and "steps 3-5" in applied[0].detail
    done, = of_type(ch.seen, ev.ProfileDone)
    assert (done.first_step, done.step, done.steps, done.asked) == (3, 5, 3, 3)
    assert done.activities == ["cpu"] and done.source == "command" and done.command_id == applied[0].command_id
    trace = Path(done.trace)
    assert trace == t.run_dir / "profile" / "steps-3-5.json"
    data = json.loads(trace.read_text())
    names = {e.get("name", "") for e in data["traceEvents"]}
    assert any(n.startswith("aten::") for n in names) and "danlu::next_batch" in names
    assert done.top_ops and all(op["self_cpu_us"] > 0 and op["calls"] >= 1 for op in done.top_ops)
    assert all(op["self_cuda_us"] is None for op in done.top_ops)
    pcts = [op["pct"] for op in done.top_ops]
    assert pcts == sorted(pcts, reverse=True) and 0 < sum(pcts) <= 100.0001
    assert 0.0 <= done.data_share <= 1.0 and done.step_time > 0
    # one events.jsonl line holds the result
    lines = [json.loads(x) for x in (t.run_dir / "events.jsonl").read_text().splitlines()]
    rec = [x for x in lines if x.get("kind") == "profile_done"]
    assert rec and rec[0]["trace"] == str(trace) and rec[0]["top_ops"][0]["name"] == done.top_ops[0]["name"]


def test_config_profile_steps_profiles_from_the_step_it_names(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 10}, "monitor": {"profile_steps": [4, 2]}}))
    done, = of_type(ch.seen, ev.ProfileDone)
    assert (done.first_step, done.step, done.steps) == (4, 5, 2)
    assert done.source == "monitor.profile_steps" and done.command_id is None
    assert Path(done.trace).name == "steps-4-5.json" and Path(done.trace).is_file()
    assert t.step == 10


def test_data_loading_share_measures_the_wait_for_batches(tmp_path):
    # every sample sleeps 10 ms in the training thread (num_workers 0); the model is a tiny MLP:
    # most of each step is the wait for its batch
    from danlu.engine.config.schema import from_dict

    from ..conftest import TINY, merge
    raw = merge(TINY, {"run": {"out_dir": str(tmp_path)}, "train": {"max_steps": 6},
                       "data": {"name": SLOW_DATA, "args": {"n": 128, "delay": 0.01}, "val_fraction": 0},
                       "monitor": {"profile_steps": [2, 3]}})
    raw["model"] = {"name": "mlp", "args": {"hidden": [8]}}
    t, ch = run_trainer(from_dict(raw))
    done, = of_type(ch.seen, ev.ProfileDone)
    assert done.data_time >= 3 * 16 * 0.01  # at least the sleeps of the 3 batches
    assert 0.5 < done.data_share <= 1.0
    assert done.data_share == pytest.approx(done.data_time / (done.steps * done.step_time))


def test_a_window_cut_short_by_the_end_of_the_run_is_reported(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6}}), {4: [ev.profile(5)]})
    done, = of_type(ch.seen, ev.ProfileDone)
    assert (done.first_step, done.step, done.steps, done.asked) == (5, 6, 2, 5)
    assert "ended" in done.detail and Path(done.trace).is_file()


def test_bad_profile_requests_are_rejected_with_the_reason(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 8}}),
                        {1: [ev.profile(0), ev.Command(ev.CommandKind.PROFILE, {"steps": "5"}), ev.profile(4)],
                         2: [ev.profile(2)]})
    rejected = [e for e in of_type(ch.seen, ev.CommandRejected) if e.kind == ev.CommandKind.PROFILE]
    assert len(rejected) == 3
    assert "1 to 1000" in rejected[0].reason and "1 to 1000" in rejected[1].reason
    assert "steps 2-5" in rejected[2].reason and "under way" in rejected[2].reason
    assert len(of_type(ch.seen, ev.ProfileDone)) == 1 and t.step == 8


@pytest.mark.parametrize("value, words", [
    ([0, 5], "two whole numbers >= 1"), ([5], "[start, count]"), ([5, 2.5], "got [5, 2.5]"),
    ([1, 5000], "at most 1000"), ("soon", "must be a list"),
])
def test_bad_profile_steps_is_a_clear_config_error(tiny_config, value, words):
    with pytest.raises(ConfigError) as err:
        tiny_config({"monitor": {"profile_steps": value}})
    assert "monitor.profile_steps" in str(err.value) and words in str(err.value)


def test_kineto_lines_are_kept_off_the_terminal_and_the_rest_passes(capfd):
    # the dashboard draws on fd 2: its bytes must pass while kineto's stage lines are dropped
    import os

    from danlu.engine.loop.profile import _quiet_stderr
    said = []
    with _quiet_stderr(said.append):
        os.write(2, b"\x1b[1;1Hframe")
        os.write(2, b"US")  # C++ writes a line in pieces
        os.write(2, b"DT:2026-12-02 17:36:29 5940:5940 SyncActivityProfilerHandler.cpp:39] ")
        os.write(2, b"profiler_start\n")
        os.write(2, b"ERROR:2026-12-02 17:36:29 5940:5940 DeviceProperties.cpp:56] gpuGetDeviceCount failed\n")
        os.write(2, b"WARNING:2026-12-02 17:36:29 5940:5940 CuptiActivity.cpp:9] CUPTI busy\n")
        os.write(2, b" more\n")
    err = capfd.readouterr().err
    assert err == "\x1b[1;1Hframe more\n"
    assert said == ["torch.profiler: CUPTI busy"]


def test_on_a_gpu_the_top_ops_rank_by_gpu_time_and_fall_back_to_cpu_time_without_kernels():
    # the CUDA side of the table, from key_averages-like rows (only a GPU run records real kernels)
    from types import SimpleNamespace as Avg

    from danlu.engine.loop.profile import top_ops
    rows = [Avg(key="aten::copy_", self_cpu_time_total=900.0, self_device_time_total=10.0, count=4),
            Avg(key="aten::mm", self_cpu_time_total=50.0, self_device_time_total=300.0, count=2),
            Avg(key="ProfilerStep#3", self_cpu_time_total=5000.0, self_device_time_total=0.0, count=1),
            Avg(key="cudaLaunchKernel", self_cpu_time_total=400.0, self_device_time_total=0.0, count=9)]
    ops = top_ops(rows, cuda=True)
    assert [op["name"] for op in ops] == ["aten::mm", "aten::copy_"]  # CPU-only rows have no GPU time
    assert ops[0]["self_cuda_us"] == 300.0 and ops[0]["pct"] == pytest.approx(100 * 300 / 310)
    no_kernels = [Avg(**{**vars(r), "self_device_time_total": 0.0}) for r in rows]
    assert [op["name"] for op in top_ops(no_kernels, cuda=True)] == ["aten::copy_", "cudaLaunchKernel", "aten::mm"]
