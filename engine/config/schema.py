"""Run configuration: the typed schema and its validation (files and overrides: files.py).
Imports no torch.

Every problem is collected before raising, each named by its key path with the
fix: `optim.lr: must be > 0, got -1`, `unknown key optim.learnig_rate, did you
mean optim.lr?`.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .knobs import (BUILTIN_DATA_ARGS, BUILTIN_MODEL_ARGS, OPTIMIZERS, SCHEDULERS, Knob, check_value as _check_value,
                    fmt as _fmt)
from .losses import DEFAULT_LOSS, LOSSES, check_loss

PACKAGED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BUILTIN_DATA = ("shapes", "mnist", "fashion_mnist", "cifar10", "image_folder")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INITS = ("default", "auto", "kaiming", "xavier")
NAN_POLICIES = ("pause", "skip", "stop")


# --- the typed config ----------------------------------------------------------

@dataclass
class RunConfig:
    name: str = "default"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    precision: str = "auto"
    out_dir: str = "runs"
    on_hangup: str = "continue"     # the terminal under the run went away: continue, or stop
    parent: str | None = None       # the run this one was restarted from (restart with changes)
    parent_step: int | None = None  # the parent's step at the checkpoint this run started from


@dataclass
class DataConfig:
    name: str = "shapes"
    root: str | None = "data"
    download: bool = False
    batch_size: int = 64
    num_workers: int = 2
    val_fraction: float = 0.1
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "small_cnn"
    args: dict[str, Any] = field(default_factory=dict)
    init: str = "default"


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    args: dict[str, Any] = field(default_factory=dict)  # the optimizer's own torch arguments
    no_decay_bias_norm: bool = True
    param_groups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScheduleConfig:
    name: str = "none"
    warmup_steps: int = 0
    warmup_start_factor: float = 0.0
    interval: str | None = None  # None: the scheduler's natural granularity
    args: dict[str, Any] = field(default_factory=dict)  # the scheduler's own torch arguments


@dataclass
class TrainConfig:
    epochs: int = 3
    max_steps: int | None = None
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    eval_every: int | None = None       # None: once per epoch
    checkpoint_every: int | None = None  # None: at the end of each epoch
    keep_last: int = 3
    loss: str = DEFAULT_LOSS
    loss_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class MonitorConfig:
    log_every: int = 10
    layer_norms_every: int = 0
    nan_policy: str = "pause"
    max_skips: int = 20
    spike_factor: float = 4.0


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    notes: list[str] = field(default_factory=list)  # what resolution changed (e.g. keys dropped)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as the nested dict a YAML file holds."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            obj = getattr(self, section)
            d = {k: copy.deepcopy(v) for k, v in vars(obj).items()}
            if section == "run":  # lineage only when there is one: plain runs' YAML stays as it was
                for k in ("parent", "parent_step"):
                    if d.get(k) is None:
                        d.pop(k, None)
            if section in ("optim", "schedule"):
                d.update(d.pop("args"))
            out[section] = d
        return out

    def to_yaml(self) -> str:
        from .files import dump_yaml  # config_files imports this module
        return dump_yaml(self.to_dict())


SECTIONS = ("run", "data", "model", "optim", "schedule", "train", "monitor")
SECTION_TYPES = {
    "run": RunConfig, "data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
    "schedule": ScheduleConfig, "train": TrainConfig, "monitor": MonitorConfig,
}

# Keys of the plain sections: key -> Knob (type, default, bounds, help).
FIELDS: dict[str, dict[str, Knob]] = {
    "run": {
        "name": Knob("str", "default", "Run name; the run directory is <out_dir>/<name>-<time>."),
        "seed": Knob("int", 0, "Seed for torch, the data split and shuffling.", min=0),
        "deterministic": Knob("bool", False, "Use deterministic algorithms (slower; bit-exact reruns)."),
        "device": Knob("str", "auto", "auto picks cuda, then mps, then cpu.", choices=DEVICES),
        "precision": Knob("str", "auto", "auto: bf16 autocast where supported, fp16 with GradScaler on older CUDA, fp32 on CPU.", choices=PRECISIONS),
        "out_dir": Knob("str", "runs", "Folder that holds run directories."),
        "on_hangup": Knob("str", "continue", "When the terminal under the run goes away (SIGHUP, a dropped SSH "
                          "session): continue (output goes to output.log in the run directory; `danlu attach` "
                          "brings the view back) or stop (save a checkpoint and exit 0).",
                          choices=("continue", "stop")),
        "parent": Knob("str", None, "Set by a warm start (--warm-start, restart with changes): the run directory this run started from; empty for a fresh run.", optional=True),
        "parent_step": Knob("int", None, "Set by a warm start: the parent run's step at the checkpoint this run started from.", min=0, optional=True),
    },
    "data": {
        "name": Knob("str", "shapes", "shapes (built-in, offline), mnist, fashion_mnist, cifar10, image_folder, or module:callable."),
        "root": Knob("str", "data", "Where the dataset files are (or go, with download).", optional=True),
        "download": Knob("bool", False, "Download torchvision datasets into root if missing."),
        "batch_size": Knob("int", 64, "Samples per step (per accumulation micro-step).", min=1),
        "num_workers": Knob("int", 2, "DataLoader worker processes (0 loads in the training thread).", min=0),
        "val_fraction": Knob("float", 0.1, "Fraction of the training set held out for validation.", min=0, lt=1),
        "args": Knob("dict", {}, "Extra arguments for the dataset builder."),
    },
    "model": {
        "name": Knob("str", "small_cnn", "small_cnn, mlp, any torchvision classifier (resnet18, ...), or module:callable."),
        "args": Knob("dict", {}, "Extra arguments for the model builder."),
        "init": Knob("str", "default", "Weight init. default: the model's own (torch's layer defaults for "
                     "small_cnn and mlp, torchvision's, and your model's weights as your code left them). auto: "
                     "kaiming for small_cnn and mlp, the model's own for torchvision and your models. kaiming, "
                     "xavier: re-initialise every trainable conv, linear and norm layer of any model; the log "
                     "names the layers, and frozen ones (requires_grad=False) are left as they are.",
                     choices=INITS),
    },
    "train": {
        "epochs": Knob("int", 3, "Passes over the training set, counted from the run's start (also after a resume or warm start).", min=1),
        "max_steps": Knob("int", None, "Stop after this many optimizer steps, whatever epochs says; counted from the run's start (also after a resume or warm start).", min=1, optional=True),
        "grad_accum": Knob("int", 1, "Micro-batches per optimizer step (loss is divided by this).", min=1),
        "grad_clip": Knob("float", 1.0, "Clip the total grad norm to this; off (or empty) disables clipping (the norm is still reported).", gt=0, optional=True, off=True),
        "eval_every": Knob("int", None, "Evaluate every N steps; empty = at the end of each epoch.", min=1, optional=True),
        "checkpoint_every": Knob("int", None, "Checkpoint every N steps; empty = at the end of each epoch.", min=1, optional=True),
        "keep_last": Knob("int", 3, "Periodic checkpoints kept (last and best are kept apart).", min=1),
        "loss": Knob("str", DEFAULT_LOSS, "The loss: " + ", ".join(LOSSES) + ", or module:callable "
                     "(called as fn(output, target, **loss_args), or a class built with loss_args and then "
                     "called). The targets each expects: the table below."),
        "loss_args": Knob("dict", {}, "Arguments of the loss, e.g. {label_smoothing: 0.1} for cross_entropy."),
    },
    "monitor": {
        "log_every": Knob("int", 10, "Move per-step metrics from the device every N steps (one transfer).", min=1),
        "layer_norms_every": Knob("int", 0, "Per-layer grad norms every N steps (one line each in metrics.jsonl, "
                                  "the top layers in the dashboard's grad panel); 0 disables.", min=0),
        "nan_policy": Knob("str", "pause", "On a non-finite loss or gradient: pause, skip the step, or stop.", choices=NAN_POLICIES),
        "max_skips": Knob("int", 20, "With nan_policy skip: stop the run as a fault (exit code 3) after this many steps in a row were skipped.", min=1),
        "spike_factor": Knob("float", 4.0, "Alert when the loss exceeds this many times its recent running level "
                             "and stands out from its recent noise; at most one alert per 100 steps.", gt=1),
    },
}

OPTIM_FIELDS: dict[str, Knob] = {
    "name": Knob("str", "adamw", "Optimizer: " + ", ".join(OPTIMIZERS) + ".", choices=tuple(OPTIMIZERS)),
    "lr": Knob("float", 1e-3, "Learning rate (of the default param group).", gt=0, max=10),
    "no_decay_bias_norm": Knob("bool", True, "Exclude biases and norm-layer weights from weight decay."),
    "param_groups": Knob("list", [], "Differential LRs: [{match: '<regex>', lr_mult: 10}], first match wins."),
}
SCHEDULE_FIELDS: dict[str, Knob] = {
    "name": Knob("str", "none", "Scheduler: " + ", ".join(SCHEDULERS) + ".", choices=tuple(SCHEDULERS)),
    "warmup_steps": Knob("int", 0, "Linear warmup over this many optimizer steps before the schedule starts.", min=0),
    "warmup_start_factor": Knob("float", 0.0, "Warmup starts at this fraction of the LR.", min=0, lt=1),
    "interval": Knob("str", None, "Step the scheduler per step or per epoch; empty = its natural unit.", choices=("step", "epoch"), optional=True),
}
PARAM_GROUP_FIELDS: dict[str, Knob] = {
    "match": Knob("str", None, "Regex searched in parameter names (e.g. '^fc\\.' or 'classifier')."),
    "lr_mult": Knob("float", 1.0, "This group's LR = optim.lr * lr_mult.", gt=0),
    "weight_decay": Knob("float", None, "This group's weight decay (default: the optimizer's).", min=0, optional=True),
    "name": Knob("str", None, "Label shown in the dashboard (default: the regex).", optional=True),
}


# Names people write for our keys (torch, Keras, other tools), and frequent typos of them.
ALIASES = {
    "learning_rate": "lr", "lr_rate": "lr", "wd": "weight_decay", "decay": "weight_decay",
    "beta": "betas", "epsilon": "eps", "bs": "batch_size", "workers": "num_workers",
    "num_epochs": "epochs", "max_epochs": "epochs", "steps": "max_steps", "clip": "grad_clip",
    "gradient_clip_val": "grad_clip", "max_grad_norm": "grad_clip", "accumulate_grad_batches": "grad_accum",
    "gradient_accumulation_steps": "grad_accum", "warmup": "warmup_steps", "scheduler": "name",
    "optimizer": "name", "arch": "name", "dataset": "name", "tmax": "T_max", "t_max": "T_max", "t_0": "T_0",
}


def _unknown(path: str, key: str, allowed: list[str], problems: list[str], why: str = "") -> None:
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not hint:
        aliases = [a for a, target in ALIASES.items() if target in allowed]
        near = difflib.get_close_matches(key.lower(), aliases, n=1, cutoff=0.75)
        hint = [ALIASES[near[0]]] if near else []
    full = f"{path}.{key}" if path else key
    if hint:
        target = f"{path}.{hint[0]}" if path else hint[0]
        problems.append(f"unknown key {full}, did you mean {target}?")
    else:
        problems.append(f"unknown key {full}{why}; allowed: {', '.join(allowed)}")


# --- building the typed config ---------------------------------------------------

def _plain_section(name: str, raw: dict[str, Any], problems: list[str]) -> Any:
    fields = FIELDS[name]
    values = {}
    for key, v in raw.items():
        if key not in fields:
            _unknown(name, key, list(fields), problems)
            continue
        values[key] = _check_value(f"{name}.{key}", v, fields[key], problems)
    obj = SECTION_TYPES[name]()
    for k, v in values.items():
        if v is not None or fields[k].optional:
            setattr(obj, k, v)
    return obj


def _kind_section(section: str, raw: dict[str, Any], common: dict[str, Knob],
                  table: dict, problems: list[str]) -> tuple[str | None, dict, dict]:
    """Validate a section whose allowed keys depend on its `name` (optim, schedule)."""
    name = raw.get("name", common["name"].default)
    name = _check_value(f"{section}.name", name, common["name"], problems)
    own: dict[str, Knob] = table[name][-1] if name else {}
    values, args = {}, {}
    for key, v in raw.items():
        if key == "name":
            continue
        if key in common:
            values[key] = _check_value(f"{section}.{key}", v, common[key], problems)
        elif key in own:
            args[key] = _check_value(f"{section}.{key}", v, own[key], problems)
        elif name is not None:
            others = [n for n, entry in table.items() if key in entry[-1]]
            why = f" ({name} does not take it; {', '.join(others)} do)" if others else ""
            _unknown(section, key, list(common) + list(own), problems, why)
    for key, knob in own.items():
        default = copy.deepcopy(knob.default)
        args.setdefault(key, list(default) if isinstance(default, tuple) else default)  # as YAML reads it
    return name, values, args


def _optim_section(raw: dict[str, Any], problems: list[str]) -> OptimConfig:
    name, values, args = _kind_section("optim", raw, OPTIM_FIELDS, OPTIMIZERS, problems)
    cfg = OptimConfig()
    if name:
        cfg.name = name
        cfg.lr = OPTIMIZERS[name][1]
    for k, v in values.items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.args = args
    if name == "sgd" and args.get("nesterov") and (args.get("momentum", 0) <= 0 or args.get("dampening", 0) != 0):
        problems.append("optim.nesterov: needs momentum > 0 and dampening 0 (set optim.momentum=0.9)")
    groups = []
    for i, g in enumerate(cfg.param_groups):
        path = f"optim.param_groups[{i}]"
        if not isinstance(g, dict):
            problems.append(f"{path}: must be a mapping like {{match: 'head', lr_mult: 10}}")
            continue
        out = {}
        for key, v in g.items():
            if key not in PARAM_GROUP_FIELDS:
                _unknown(path, key, list(PARAM_GROUP_FIELDS), problems)
                continue
            out[key] = _check_value(f"{path}.{key}", v, PARAM_GROUP_FIELDS[key], problems)
        if "match" not in g:
            problems.append(f"{path}.match: must be set (a regex searched in parameter names)")
        elif isinstance(out.get("match"), str):
            import re
            try:
                re.compile(out["match"])
            except re.error as e:
                problems.append(f"{path}.match: not a valid regex ({e})")
        out.setdefault("lr_mult", 1.0)
        groups.append(out)
    cfg.param_groups = groups
    return cfg


def _schedule_section(raw: dict[str, Any], problems: list[str]) -> ScheduleConfig:
    name, values, args = _kind_section("schedule", raw, SCHEDULE_FIELDS, SCHEDULERS, problems)
    cfg = ScheduleConfig()
    if name:
        cfg.name = name
    for k, v in values.items():
        if v is not None or SCHEDULE_FIELDS[k].optional:
            setattr(cfg, k, v)
    cfg.args = args
    if name == "plateau" and cfg.interval not in (None,):
        problems.append("schedule.interval: plateau steps on each evaluation; leave interval empty")
    if name == "onecycle" and args.get("base_momentum") is not None and args.get("max_momentum") is not None \
            and args["base_momentum"] > args["max_momentum"]:
        problems.append("schedule.base_momentum: must be <= schedule.max_momentum")
    return cfg


def from_dict(raw: Any, source: str | None = None) -> Config:
    """A validated Config from a nested dict; every problem reported at once."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"the file must hold a mapping of sections ({', '.join(SECTIONS)}), got {type(raw).__name__}"], source)
    cfg = Config()
    for key, section in raw.items():
        if key not in SECTIONS:
            _unknown("", str(key), list(SECTIONS), problems)
            continue
        if section is None:
            section = {}
        if not isinstance(section, dict):
            problems.append(f"{key}: must be a mapping of keys, got {_fmt(section)}")
            continue
        if key == "optim":
            cfg.optim = _optim_section(section, problems)
        elif key == "schedule":
            cfg.schedule = _schedule_section(section, problems)
        else:
            setattr(cfg, key, _plain_section(key, section, problems))
    if "optim" not in raw:
        cfg.optim = _optim_section({}, problems)
    if "schedule" not in raw:
        cfg.schedule = _schedule_section({}, problems)
    _cross_checks(cfg, problems)
    if problems:
        raise ConfigError(problems, source)
    return cfg


# A run directory is <out_dir>/<name>-<YYYYmmdd-HHMMSS>[-N]: the name must be one folder name,
# and short enough that the whole stays under the usual 255-byte limit.
RUN_NAME_MAX_BYTES = 200


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run directory, or None."""
    bad = [c for c in ("/", "\\", "\0") if c in name]
    if not name.strip() or name in (".", "..") or bad or len(name.encode()) > RUN_NAME_MAX_BYTES:
        why = (f"holds {' and '.join(repr(c) for c in bad)}" if bad else
               f"is longer than {RUN_NAME_MAX_BYTES} bytes" if len(name.encode()) > RUN_NAME_MAX_BYTES else
               "is not a folder name")
        safe = "-".join(p for p in name.replace("\\", "/").split("/") if p.strip(". ")) or "myrun"
        return (f"run.name: {name!r} {why}; it names one folder, the run directory <out_dir>/<name>-<time>. "
                f"Use e.g. run.name={safe[:40]}" + (", and run.out_dir for the folder above it" if bad else ""))
    return None


def _cross_checks(cfg: Config, problems: list[str]) -> None:
    name_problem = run_name_problem(cfg.run.name)
    if name_problem:
        problems.append(name_problem)
    d = cfg.data
    if d.name not in BUILTIN_DATA and ":" not in d.name:
        hint = difflib.get_close_matches(d.name, BUILTIN_DATA, n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        problems.append(f"data.name: unknown dataset {d.name!r}; use one of {', '.join(BUILTIN_DATA)} "
                        f"or 'package.module:callable'.{extra}")
    check_loss(cfg.train.loss, cfg.train.loss_args, problems)
    for section, table in (("model", BUILTIN_MODEL_ARGS), ("data", BUILTIN_DATA_ARGS)):
        sec = getattr(cfg, section)
        own = table.get(sec.name)
        for key in [] if own is None else [k for k in sec.args if k not in own]:
            takes = f"it takes {', '.join(own)}" if own else "it takes no arguments"
            problems.append(f"{section}.args.{key}: {sec.name} does not take it ({takes}). "
                            f"Remove it from {section}.args.")
    if d.name == "image_folder" and not d.root:
        problems.append("data.root: image_folder needs the folder of class subfolders (data.root=path/to/images)")
