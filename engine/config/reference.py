"""docs/config.md, written from the schema itself: `python -m danlu.engine.config.reference`."""

from __future__ import annotations

from . import resume
from .hot import BY_PATH
from .schema import FIELDS, OPTIM_FIELDS, PARAM_GROUP_FIELDS, SCHEDULE_FIELDS, UNFREEZE_FIELDS
from .knobs import OPTIMIZERS, SCHEDULERS, Knob
from .losses import INPUT_RULE, LAZY_RULE, LOSSES, OUTPUT_RULE, OUTPUTS_RULE
from .plan import STREAM_RULE


def _default(k: Knob) -> str:
    if k.default is None:
        return "(empty)"
    if isinstance(k.default, bool):
        return str(k.default).lower()
    if isinstance(k.default, tuple):
        return str(list(k.default))
    return f"{k.default}" if k.default != "" else '""'


def _table(fields: dict[str, Knob]) -> list[str]:
    rows = ["| key | default | meaning |", "|-----|---------|---------|"]
    for name, k in fields.items():
        extra = f" One of: {', '.join(map(str, k.choices))}." if k.choices and "One of" not in k.help else ""
        rows.append(f"| `{name}` | `{_default(k)}` | {k.help}{extra} |")
    return rows


def render() -> str:
    out = ["# Config reference", "",
           "Generated from the schema (`engine/config/schema.py`, `engine/config/knobs.py`) by",
           "`python -m danlu.engine.config.reference > docs/config.md`; a test keeps it in step.",
           "Every key is optional; `danlu check CONFIG` prints the resolved config.", ""]
    for section in ("run", "data", "model"):
        out += [f"## {section}", "", *_table(FIELDS[section]), ""]
        if section == "data":
            out += ["### Streams", "", STREAM_RULE, ""]
        if section == "model":
            out += ["Each entry of `unfreeze`:", "", *_table(UNFREEZE_FIELDS), ""]
    out += ["### What the model gets and gives", "",
            f"- **Inputs.** {INPUT_RULE}",
            f"- **Outputs.** The loss and the metrics use the model's main output: {OUTPUT_RULE}",
            f"- **Output size.** {OUTPUTS_RULE}",
            f"- **Lazy layers.** {LAZY_RULE}", ""]
    out += ["## optim", "", "Common keys:", "", *_table(OPTIM_FIELDS), "",
            "Each entry of `param_groups`:", "", *_table(PARAM_GROUP_FIELDS), ""]
    for name, (cls, lr, own) in OPTIMIZERS.items():
        out += [f"### optim.name: {name} (torch.optim.{cls}, default lr {lr:g})", "", *_table(own), ""]
    out += ["## schedule", "", "Common keys:", "", *_table(SCHEDULE_FIELDS), ""]
    for name, (cls, interval, own) in SCHEDULERS.items():
        if name == "none":
            continue
        out += [f"### schedule.name: {name} (torch.optim.lr_scheduler.{cls}, stepped per {interval})", "",
                *(_table(own) if own else ["(no arguments)"]), ""]
    for section in ("train", "monitor"):
        out += [f"## {section}", "", *_table(FIELDS[section]), ""]
        if section == "train":
            out += _losses()
    out += _going_on()
    return "\n".join(out)


def _losses() -> list[str]:
    rows = ["### train.loss: the targets each loss expects", "",
            "`val_loss` is always the training loss over the validation set (label smoothing included); "
            "`val_acc` is reported only where the last column says how it is counted.", "",
            "| loss | torch.nn.functional | targets | val_acc | loss_args |",
            "|------|---------------------|---------|---------|-----------|"]
    for name, spec in LOSSES.items():
        args = "; ".join(f"`{k}` (default `{_default(a)}`): {a.help}" for k, a in spec.args.items()) or "none"
        rows.append(f"| `{name}` | `{spec.function}` | {spec.targets} | {spec.accuracy or 'not reported'} | {args} |")
    rows.append("| `module:callable` | your function or class | whatever it takes: it gets the model's main output and "
                "the targets as the dataset gives them (on the device), except that an output of shape (N, 1) "
                "against targets (N,) comes as (N,) (torch would broadcast it to (N, N)) and floating targets "
                "take the output's precision | not reported | passed to it as keyword arguments (to the "
                "constructor of a class) |")
    return rows + [""]


def _keys(paths) -> str:
    return ", ".join(f"`{p}`" for p in paths)


def _going_on() -> list[str]:
    """How a run goes on from a checkpoint: the rules of config/resume.py and build/schedule.py::retime."""
    return [
        "## Resume, restart and warm start", "",
        "`danlu run --resume RUN [key=value ...]` continues a run in its own directory from its newest good "
        "checkpoint. Each override is either applied, with a line in the log and a `resume_change` record in "
        "`events.jsonl`, or refused before anything runs (exit 2, the run untouched), by this table "
        "(`engine/config/resume.py`):", "",
        "| keys | on a resume |", "|------|-------------|",
        f"| {_keys(BY_PATH)} | applied after the restore as the live commands apply them; `optim.lr` rescales "
        "the schedule by new/old, so its shape is kept at the new level; the value wins over one changed "
        "mid-run and saved in the checkpoint |",
        f"| {_keys(resume.LENGTH)} | the run's new length; the schedule is refitted (below) |",
        f"| {_keys(resume.HARMLESS)} | applied as they are |",
        "| `data.batch_size` with `train.grad_accum`, their product unchanged | applied: each optimizer step "
        "sees the same samples in smaller pieces (what the out-of-memory hint suggests) |",
        "| anything else (the model, the optimizer's kind, arguments or param groups, the data, its split, order "
        "or batch, the schedule, the seed, the run's name and folder) | refused, naming each key and why, with "
        "the warm start that makes the change instead |", "",
        "The config a resume runs with is written back to the run's `config.yaml`, so a later resume "
        "starts from it.", "",
        "**The run's length.** `train.max_steps` and `train.epochs` count from the run's first step, also "
        "when it goes on from a checkpoint (a resume, a warm start, a restart with changes). With "
        "`max_steps` set, it is the total; otherwise the total is the steps done plus the rest of the current "
        "epoch and the remaining epochs at today's steps per epoch (after a batch-size change, another "
        "number than before). A total behind the step the run has reached is refused.", "",
        "**The schedule's length.** Two schedulers depend on the run's length: `cosine` with `T_max` empty "
        "and `onecycle` with `total_steps` empty. When the length changes, the part of the schedule still "
        "ahead is stretched or shrunk: the LR goes on from its value at the checkpoint and reaches the "
        "schedule's end at the run's new last step, never climbing back (cosine keeps the fraction of its "
        "curve already behind; onecycle moves its phase boundaries ahead). Inside the warmup the length is "
        "simply derived again. A `T_max` or `total_steps` set in the config is kept, with a note. The other "
        "schedulers go on as they were. A cosine or one-cycle schedule that has already reached its end has "
        "nothing left to stretch: a resume is refused and says to warm start, a warm start begins a new "
        "schedule. Each refit is a log line and a `schedule_retimed` record in `events.jsonl` (`old_total`, "
        "`new_total` on the schedule's clock, `run_total`).", "",
        "**Warm start.** `danlu run [CONFIG] --warm-start RUN_OR_CHECKPOINT [key=value ...]`, and restart "
        "with changes in the dashboard (`c`, then ctrl+r), begin a new run directory from a checkpoint (a run "
        "directory means its newest good one), with any change: the config is CONFIG, or else the old run's "
        "`config.yaml`, plus the overrides. `run.parent` and `run.parent_step` name where it came from, and "
        "it goes on from that step. The weights are always loaded; the optimizer's state when its kind and "
        "param groups still fit; the schedule's state when neither `optim` nor `schedule` changed, refitted "
        "to the new length. Otherwise a new schedule, its warmup included, runs over the steps left. With "
        "another batch size the interrupted epoch starts over.", ""]


if __name__ == "__main__":
    print(render(), end="")
