"""docs/config.md, written from the schema itself: `python -m danlu.engine.config.reference`."""

from __future__ import annotations

from .schema import FIELDS, OPTIM_FIELDS, PARAM_GROUP_FIELDS, SCHEDULE_FIELDS
from .knobs import OPTIMIZERS, SCHEDULERS, Knob


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
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
