"""What is checked before a run starts, beyond the schema: the same checks for `danlu check`,
`danlu run` and the Trainer, so a config `check` calls valid does not fail at the start of a run.
Imports no torch.

Two kinds of finding:
- a problem (ConfigError, exit 2) where the setup can only be a mistake or cannot run: the run
  directory cannot be made, a file the config names is not there, the batch is larger than the
  data, plateau with no validation set (it steps on evaluations only, so the LR would never move);
- a warning where it may be meant but is most likely not: warmup as long as the run or longer (a
  smoke test of a real config does that on purpose; the LR then never reaches optim.lr).

`preflight` looks at the config and the disk; `plan_findings` at the run's length and data, which
the Trainer knows exactly once the data is built and `danlu check` knows when the size is known.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .knobs import BUILTIN_DATA_ARGS, SCHEDULERS
from .plan import StepPlan, known_train_size, plan_steps

# Datasets that read files under data.root (download fetches the torchvision ones there).
_FILE_DATASETS = tuple(n for n in BUILTIN_DATA_ARGS if n != "shapes")


def _writable_dir_problem(out_dir: str) -> str | None:
    """Why the run directory's parent folder cannot be used, or None (nothing is created here)."""
    p = Path(out_dir).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return (f"run.out_dir: cannot create {p} ({probe} is a file, not a folder). "
                "Point run.out_dir at a folder you can write to.")
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"run.out_dir: {probe} is not writable, so {p} cannot hold runs. Point run.out_dir at a folder you can write to."
    return None


def _code_file_problem(key: str, spec: str) -> str | None:
    """A `path/to/file.py:callable` whose file is missing (a module name is only found by importing it)."""
    module, sep, _ = spec.rpartition(":")
    if not sep or not (module.endswith(".py") or "/" in module or os.sep in module):
        return None
    path = Path(module).expanduser()
    if not path.is_file():
        return (f"{key}: file {module!r} not found (looked at {path.absolute()}). "
                "Give a path relative to the folder you run from, or an absolute one.")
    return None


def has_validation(cfg: Any) -> bool | None:
    """Whether the run will have a validation set: None when only the user's dataset can tell."""
    if cfg.data.val_fraction and cfg.data.val_fraction > 0:
        return True
    return False if cfg.data.name in BUILTIN_DATA_ARGS else None


def plan_findings(cfg: Any, plan: StepPlan | None, has_val: bool | None) -> tuple[list[str], list[str]]:
    """(problems, warnings) about the run's length and evaluations; unknowns (None) are not judged."""
    problems, warnings = [], []
    s = cfg.schedule
    if s.name == "plateau" and has_val is False:
        problems.append("schedule.name: plateau lowers the LR when val_loss stops improving, but this run has "
                        "no validation set (data.val_fraction is 0), so the LR would never change. Set "
                        "data.val_fraction=0.1, or use another schedule (cosine, step).")
    if plan is None:
        return problems, warnings
    if s.warmup_steps and s.warmup_steps >= plan.total_steps:
        after = "" if s.name == "none" else f" and {s.name} never starts"
        warnings.append(f"schedule.warmup_steps={s.warmup_steps} is as long as the run ({plan.total_steps} steps) "
                        f"or longer: the LR never reaches optim.lr{after}. Lower it, e.g. "
                        f"schedule.warmup_steps={max(1, plan.total_steps // 10)}.")
    # decays that the run never reaches (in the scheduler's own unit: epochs unless interval says step)
    unit = s.interval or SCHEDULERS[s.name][1]
    length = plan.total_steps if unit == "step" else plan.epochs
    firsts = {"step": [s.args.get("step_size")], "multistep": s.args.get("milestones") or []}.get(s.name, [])
    first = min((x for x in firsts if isinstance(x, int)), default=None)
    if first is not None and first >= length:
        key = "step_size" if s.name == "step" else "milestones"
        warnings.append(f"schedule.{key}: the first decay comes after {unit} {first}, but the run has "
                        f"{length} {unit}s: the LR never decays. Lower it"
                        + (", or set schedule.interval=step." if unit == "epoch" else "."))
    every = cfg.train.eval_every
    n = cfg.train.overfit_batches
    if n and plan.total_steps < 100:
        warnings.append(f"train.overfit_batches={n}: an epoch is now {n} batch{'es' if n > 1 else ''}, so this run "
                        f"has only {plan.total_steps} steps, too few to judge; set train.max_steps=300.")
    if n and not every:
        warnings.append(f"train.overfit_batches={n} with train.eval_every empty evaluates after every epoch of "
                        f"{n} batch{'es' if n > 1 else ''} (and may write best.pt as often); set train.eval_every=100.")
    if s.name == "plateau" and has_val and every and every >= plan.total_steps:
        warnings.append(f"train.eval_every={every}: the run ({plan.total_steps} steps) evaluates only at its end, "
                        "so plateau never lowers the LR. Evaluate more often, or leave eval_every empty (each epoch).")
    return problems, warnings


def preflight(cfg: Any, *, new_run: bool = True) -> list[str]:
    """Raise ConfigError for what would stop the run at its start; return the warnings.

    new_run=False for a resume, which writes into its existing run directory.
    """
    problems: list[str] = []
    if new_run:
        problems += filter(None, [_writable_dir_problem(cfg.run.out_dir)])
    for key, spec in (("model.name", cfg.model.name), ("data.name", cfg.data.name)):
        problems += filter(None, [_code_file_problem(key, spec)])
    d = cfg.data
    if d.name in _FILE_DATASETS and d.root and not d.download and not Path(d.root).expanduser().is_dir():
        problems.append(f"data.root: {d.root} is not a folder. Point data.root at the folder of class subfolders."
                        if d.name == "image_folder" else
                        f"data.root: {d.root} does not exist, so it has no {d.name} files. Set data.download=true "
                        "to fetch them into it, or point data.root at a folder that has them.")
    plan = None
    n = known_train_size(d)
    if n is not None:
        try:
            plan = plan_steps(n, d.batch_size, cfg.train.grad_accum, cfg.train.epochs, cfg.train.max_steps)
        except ValueError as e:
            problems.append(str(e))
    more, warnings = plan_findings(cfg, plan, has_validation(cfg))
    problems += more
    if problems:
        raise ConfigError(problems)
    return warnings
