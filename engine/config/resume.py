"""What a resume may change: every config key in one of four classes, one table. Imports no torch.

A resume continues the same run in its own directory, so only what leaves the run the same run
may change:

- hot: the settings that can change mid-run (hot.py's table); applied after the restore through
  the live commands' own code (optim.lr rescales the schedule so its base LR becomes the new one);
- length: train.max_steps and train.epochs; the rest of a length-derived schedule (cosine without
  T_max, onecycle without total_steps) is stretched or shrunk to the new end;
- harmless: where and how the run computes and what it watches and keeps (device, precision,
  workers, the data folder, monitoring, checkpoints kept); applied as they are;
- split: data.batch_size and train.grad_accum changed together with the same product (what the
  out-of-memory hint suggests): every optimizer step sees the same samples, in smaller pieces;
- everything else would make another run (the model, the optimizer's kind or param groups, the
  data, its order, split or batch, the schedule's shape, the seed): refused before anything
  runs, with the warm start that does it instead (a new run from this one's weights).

`danlu run --resume` checks the overrides against the run's config.yaml before torch loads; the
Trainer checks the checkpoint's config against the config it was given, and applies the changes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from .hot import BY_PATH


class Kind(StrEnum):
    HOT = "hot"
    LENGTH = "length"
    HARMLESS = "harmless"
    SPLIT = "split"        # data.batch_size and train.grad_accum with the same product: same steps
    REFUSED = "refused"


LENGTH = ("train.max_steps", "train.epochs")
HARMLESS = ("run.device", "run.on_hangup", "run.precision", "run.deterministic", "data.num_workers", "data.root", "data.download",
            "train.keep_last", "monitor.layer_norms_every", "monitor.nan_policy", "monitor.spike_factor")
# Why a key cannot change on a resume, by its first segments (the longest match wins).
WHY_REFUSED = {
    "run.seed": "the seed fixes the data split and order",
    "run.name": "a resume keeps its run directory",
    "run.out_dir": "a resume keeps its run directory",
    "run.parent": "danlu sets the lineage",
    "run.parent_step": "danlu sets the lineage",
    "data.batch_size": "it changes what one step sees (keep data.batch_size x train.grad_accum the same to "
                       "split a step into smaller pieces)",
    "data": "it changes the data, its split, order or batches",
    "model": "it changes the model the checkpoint holds",
    "optim.name": "the optimizer's state belongs to its kind",
    "optim.param_groups": "the optimizer's state is kept per param group",
    "optim.no_decay_bias_norm": "it changes the param groups",
    "optim": "it is not a setting that can change mid-run",
    "schedule": "it changes the schedule's shape",
    "train.grad_accum": "it changes what one step sees (keep data.batch_size x train.grad_accum the same to "
                        "split a step into smaller pieces)",
}


def kind_of(path: str) -> Kind:
    if path in BY_PATH:
        return Kind.HOT
    if path in LENGTH:
        return Kind.LENGTH
    if path in HARMLESS:
        return Kind.HARMLESS
    return Kind.REFUSED


def why_refused(path: str) -> str:
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        why = WHY_REFUSED.get(".".join(parts[:n]))
        if why:
            return why
    return "it is not a setting a resume can change"


@dataclass(frozen=True)
class Change:
    """One key that differs between the run's config and the resumed one."""

    path: str
    old: Any
    new: Any
    kind: Kind

    def text(self) -> str:
        off = self.path in BY_PATH and BY_PATH[self.path].knob.off
        return f"{self.path} {'off' if off and self.old is None else _show(self.old)} → " \
               f"{'off' if off and self.new is None else _show(self.new)}"


def _show(v: Any) -> str:
    if v is None:
        return "(empty)"
    if isinstance(v, bool):
        return str(v).lower()
    return _yaml_word(v)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'model': {'args': {'width': 8}}} -> {'model.args.width': 8}; an empty mapping holds no keys."""
    out = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, path + "."))
        else:
            out[path] = v
    return out


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every key whose value differs between two resolved configs (Config.to_dict()), classified."""
    a, b = _flat(old), _flat(new)
    out = []
    for path in [*a, *(p for p in b if p not in a)]:
        va, vb = a.get(path), b.get(path)
        if _same(va, vb):
            continue
        out.append(Change(path, va, vb, kind_of(path)))
    split = {"data.batch_size", "train.grad_accum"}
    if any(c.path in split for c in out) and _effective_batch(a) == _effective_batch(b):
        out = [Change(c.path, c.old, c.new, Kind.SPLIT) if c.path in split else c for c in out]
    return out


def _effective_batch(flat: dict[str, Any]) -> Any:
    try:
        return int(flat["data.batch_size"]) * int(flat.get("train.grad_accum", 1))
    except (KeyError, TypeError, ValueError):
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def refusal(run_dir: str, refused: list[Change], words: list[str] | None = None) -> str:
    """The message for changes a resume cannot make: each key and why, and the warm start that does it.

    `words`: the overrides as typed (key=value); the keys they changed are the ones named (a kind
    switch changes more keys than the one typed), and all of them go to the warm start as typed.
    """
    typed = [w.partition("=")[0].strip() for w in words or []]
    named = [c for c in refused if any(c.path == k or c.path.startswith(k + ".") for k in typed)] or refused
    lines = [f"  {c.text()}: {why_refused(c.path)}" for c in named]
    words = words if words else [f"{c.path}={_yaml_word(c.new)}" for c in refused]
    words = " ".join(shlex.quote(w) for w in words)
    return ("resume: these changes would make it another run, so nothing was resumed and the run is "
            "untouched:\n" + "\n".join(lines) + "\n"
            "To make them, start a new run from this one's weights (its own run directory; this run stays "
            f"as it is): danlu run --warm-start {shlex.quote(str(run_dir))} {words}\n"
            "Or resume without them. A resume can change " + ", ".join(BY_PATH) + " (applied as the live "
            "commands apply them); " + ", ".join(LENGTH) + " (the schedule is refitted to the new end); "
            + ", ".join(HARMLESS) + " (as they are); data.batch_size with train.grad_accum at the same product.")


def _yaml_word(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple, dict)):
        return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    return str(v)
