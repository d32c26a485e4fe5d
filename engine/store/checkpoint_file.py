"""Checkpoints: atomic writes, safe loads, and finding the newest good one."""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

FORMAT = 1
_PERIODIC = re.compile(r"^step-(\d+)\.pt$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: Path) -> None:
    """Write beside the target, fsync, rename: a file under the final name is always whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain values (loads with weights_only)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    version, internal, gauss = random.getstate()
    state["python"] = [version, list(internal), gauss]
    try:
        import numpy as np
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [name, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)]
    except ImportError:
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        import numpy as np
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype("uint32"), pos, has_gauss, cached))


def load(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint read with weights_only=True; anything else is refused, never run."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for bad files
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            raise CheckpointError(
                f"{path}: refused: the file holds Python objects beyond tensors and plain values, and "
                "loading it could run code. danlu never loads such files. If you trust it, re-save its "
                "state_dict with torch.save.") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupted?): "
                              f"{type(e).__name__}: {text.splitlines()[0] if text else ''}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path}: not a danlu checkpoint (no model state inside)")
    return obj


def candidates(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, newest first (last.pt, then periodic by step)."""
    ck = Path(run_dir) / "checkpoints"
    if not ck.is_dir():
        return []
    files = [p for p in ck.glob("*.pt") if not p.name.startswith(".")]

    def key(p: Path):
        return (p.stat().st_mtime, p.name == "last.pt")

    return sorted(files, key=key, reverse=True)


def find_latest(run_dir: Path, warn=None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint that loads; broken ones are skipped with a warning."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"resume: {run_dir} is not a directory. Give the run directory, "
                              "e.g. danlu run --resume runs/default-20260101-120000")
    files = candidates(run_dir)
    if not files:
        raise CheckpointError(f"resume: {run_dir} has no checkpoints (checkpoints/*.pt). "
                              "The run stopped before its first checkpoint; start it again.")
    best: tuple[int, Path, dict] | None = None
    errors = []
    for p in files:
        try:
            obj = load(p)
        except CheckpointError as e:
            errors.append(str(e))
            if warn:
                warn(f"skipping {p.name}: {e}")
            continue
        step = int(obj.get("step", -1))
        if best is None or step > best[0]:
            best = (step, p, obj)
    if best is None:
        raise CheckpointError("resume: no usable checkpoint in "
                              f"{run_dir}:\n  " + "\n  ".join(errors))
    return best[1], best[2]


def prune(run_dir: Path, keep_last: int) -> None:
    """Remove the oldest periodic checkpoints beyond keep_last (last/best are kept)."""
    ck = Path(run_dir) / "checkpoints"
    periodic = sorted((int(m.group(1)), p) for p in ck.glob("step-*.pt")
                      if (m := _PERIODIC.match(p.name)))
    for _, p in periodic[:-keep_last] if keep_last > 0 else []:
        try:
            p.unlink()
        except OSError:
            pass


def load_model_state(model: torch.nn.Module, state: dict[str, Any], source: str) -> None:
    """Strict load with a readable list of what does not fit."""
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", shapes)):
            if items:
                shown = "\n    ".join(items[:10]) + (f"\n    ... and {len(items) - 10} more" if len(items) > 10 else "")
                parts.append(f"  {title} ({len(items)}):\n    {shown}")
        raise CheckpointError(f"{source}: the checkpoint is for a different model.\n" + "\n".join(parts)
                              + "\nResume with the config the checkpoint was made with (its run's config.yaml).")
    model.load_state_dict(state)
