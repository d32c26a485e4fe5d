"""docs/config.md, written from the schema itself: `python -m danlu.engine.config.reference`."""

from __future__ import annotations

from .schema import FIELDS, OPTIM_FIELDS, PARAM_GROUP_FIELDS, SCHEDULE_FIELDS
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


if __name__ == "__main__":
    print(render(), end="")
