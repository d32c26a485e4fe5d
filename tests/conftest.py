"""Shared test helpers: tiny configs that train in seconds on a CPU."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

# One torch thread per test process (and the danlu processes the tests start, which inherit it). The
# models here are tiny, so extra intra-op threads only add hand-offs, and under `-n 2` on two cores
# each worker's threads would fight the other's: test_trainer.py took 30 s of CPU with one thread
# and 46-106 s with torch's default. A user's run keeps torch's default; nothing here tests speed.
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # a plugin imported torch before us: the variable is read only at start
    sys.modules["torch"].set_num_threads(1)

TINY = {
    "run": {"name": "t", "seed": 0, "deterministic": True, "device": "cpu", "precision": "fp32"},
    "data": {"name": "shapes", "batch_size": 16, "num_workers": 0, "val_fraction": 0.25,
             "args": {"size": 256, "image_size": 16}},
    "model": {"name": "small_cnn", "args": {"width": 8}},
    "optim": {"name": "adamw", "lr": 0.003},
    "schedule": {"name": "none"},
    "train": {"epochs": 2, "eval_every": None, "checkpoint_every": None},
    "monitor": {"log_every": 4},
}


def merge(base: dict, over: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


@pytest.fixture
def tiny_config(tmp_path):
    """A factory: tiny_config(**section_overrides) -> validated Config writing under tmp_path."""
    from danlu.engine.config.schema import from_dict

    def make(over: dict | None = None):
        raw = merge(TINY, {"run": {"out_dir": str(tmp_path / "runs")}})
        raw = merge(raw, over or {})
        return from_dict(raw)

    return make


@pytest.fixture
def short_tmp():
    """A folder with a short path, for tests that put a Unix socket in it: pytest's tmp_path can pass
    the ~107-byte AF_UNIX limit (under xdist it gains a popen-gwN level), and a socket there would
    take the fallback path the deep-out_dir test covers on purpose."""
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="dl-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll `predicate` until it is truthy or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


REPO = Path(__file__).resolve().parent.parent
