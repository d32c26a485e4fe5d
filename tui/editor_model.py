"""The editor's model of a config file: its text checked the way `danlu run` checks it, each
problem located at its line and key, the fields the form shows, and form values <-> YAML.

No textual and no torch: the editor's screens and widgets call these, tests use them directly.
The text is the one source of truth and the form a view of it; edits to the text go through
danlu.engine.config.yaml_edit, which keeps comments.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from danlu.engine.config.schema import FIELDS, OPTIM_FIELDS, SCHEDULE_FIELDS, SECTIONS, Config, from_dict
from danlu.engine.config.files import parse_yaml
from danlu.engine.errors import ConfigError, UserError
from danlu.engine.config.knobs import OPTIMIZERS, SCHEDULERS, Knob, foreign_keys
from danlu.engine.config.yaml_edit import DELETE, same_value, split_path

# Offered in the model Select; any torchvision classifier or module:callable works too (raw view).
MODEL_SUGGESTIONS = ("small_cnn", "mlp", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small",
                     "efficientnet_b0", "vit_b_16")


# --- checking ------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One thing wrong with the text, located where possible."""

    message: str
    path: str | None = None   # 'optim.lr'; None when it concerns no single key
    line: int | None = None   # 0-based line of the text it concerns


@dataclass
class Checked:
    """What a text holds: the raw mapping, the validated config, and the problems."""

    raw: dict | None
    config: Config | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def for_path(self, path: str) -> list[Problem]:
        """Problems about `path` itself or an item below it (optim.betas[0])."""
        return [p for p in self.problems if p.path and (p.path == path or p.path.startswith((path + ".", path + "[")))]


_PATH = r"[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*"


def problem_path(message: str) -> str | None:
    """The key path a ConfigError problem names ('optim.lr: must be > 0' -> 'optim.lr')."""
    m = re.match(rf"unknown key ({_PATH})", message) or re.match(rf"({_PATH}):\s", message)
    return m.group(1) if m else None


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def line_of(text: str, path: str, root: yaml.Node | None = None) -> int | None:
    """0-based line of the key `path` names, or of its deepest ancestor in the text."""
    node = root if root is not None else _compose(text)
    line = None
    for seg in split_path(path):
        if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == seg:
                    line, node = k.start_mark.line, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            node = node.value[seg]
            line = node.start_mark.line
        else:
            return line
    return line


def check(text: str) -> Checked:
    """Parse and validate `text` the way `danlu run` would; every problem located."""
    try:
        raw = parse_yaml(text, source="yaml")
    except UserError as e:
        msg = str(e).removeprefix("yaml:").strip()
        m = re.search(r"line (\d+)", msg)
        return Checked(None, None, [Problem(msg, None, int(m.group(1)) - 1 if m else None)])
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Checked(None, None, [Problem(f"the file must hold a mapping of sections ({', '.join(SECTIONS)})", None, 0)])
    try:
        cfg = from_dict(copy.deepcopy(raw))
    except ConfigError as e:
        root = _compose(text)
        out = []
        for msg in e.problems:
            path = problem_path(msg)
            out.append(Problem(msg, path, line_of(text, path, root) if path else None))
        return Checked(raw, None, out)
    return Checked(raw, cfg, [])


# --- which fields apply ------------------------------------------------------------

def kind_name(raw: dict | None, section: str) -> str:
    """The optimizer or scheduler the raw config names (its default when unset or unknown)."""
    table, default = (OPTIMIZERS, OPTIM_FIELDS["name"].default) if section == "optim" \
        else (SCHEDULERS, SCHEDULE_FIELDS["name"].default)
    sec = (raw or {}).get(section)
    name = sec.get("name", default) if isinstance(sec, dict) else default
    return name if isinstance(name, str) and name in table else default


LINEAGE_KEYS = ("parent", "parent_step")


def section_knobs(section: str, raw: dict | None) -> dict[str, Knob]:
    """The keys the form shows for a section, in order: only those the chosen kind takes."""
    if section == "optim":
        own = OPTIMIZERS[kind_name(raw, "optim")][2]
        return {"name": OPTIM_FIELDS["name"], "lr": OPTIM_FIELDS["lr"], **own,
                **{k: v for k, v in OPTIM_FIELDS.items() if k not in ("name", "lr")}}
    if section == "schedule":
        own = SCHEDULERS[kind_name(raw, "schedule")][2]
        return {"name": SCHEDULE_FIELDS["name"], **own,
                **{k: v for k, v in SCHEDULE_FIELDS.items() if k != "name"}}
    knobs = dict(FIELDS[section])
    if section == "run":
        # lineage that restart with changes writes: shown only on a config that has it
        sec = (raw or {}).get("run")
        for key in LINEAGE_KEYS:
            if not (isinstance(sec, dict) and sec.get(key) is not None):
                knobs.pop(key, None)
    return knobs


def default_of(path: str, raw: dict | None) -> Any:
    """The value a missing key takes (optim.lr depends on the optimizer)."""
    section, key = path.split(".", 1)
    if path == "optim.lr":
        return OPTIMIZERS[kind_name(raw, "optim")][1]
    knob = section_knobs(section, raw).get(key)
    return knob.default if knob else None


def kind_switch(raw: dict | None, section: str, name: str) -> tuple[dict[str, Any], list[str]]:
    """The edits that switch optim/schedule to `name`: keys only the old kind took are dropped."""
    changes: dict[str, Any] = {f"{section}.name": name}
    notes = []
    sec = (raw or {}).get(section)
    for key in foreign_keys(section, list(sec), name) if isinstance(sec, dict) else []:
        changes[f"{section}.{key}"] = DELETE
        notes.append(f"{section}.{key} dropped: {name} does not take it")
    return changes, notes


# --- form values <-> text ------------------------------------------------------------

def show_value(value: Any) -> str:
    """How the form's Input shows a value: YAML flow text, empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return yaml.safe_dump(_plain(value), default_flow_style=True, width=4096).strip()
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


def read_input(text: str, knob: Knob) -> Any:
    """The value a form Input stands for; DELETE when emptied (the default applies).

    Text that does not parse is kept as a string, so validation names the problem
    (optim.lr: must be a number) instead of the form swallowing it.
    """
    if not text.strip():
        # optional knobs: empty means "derive it" (T_max from the run) or "off" (grad_clip)
        return None if knob.optional and knob.default is not None else DELETE
    if knob.type == "str":
        return text
    try:
        return parse_yaml(text, source="value")
    except UserError:
        return text


# --- saving -----------------------------------------------------------------------------

def unified_diff(old: str, new: str, name: str) -> str:
    """What saving would change, as a unified diff ('' when nothing)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{name} (on disk)", f"{name} (edited)"))




def changed_paths(old: Config, new: Config) -> list[str]:
    """Dotted keys whose resolved value differs between two configs."""
    a, b = old.to_dict(), new.to_dict()
    out = []
    for section in SECTIONS:
        sa, sb = a.get(section, {}), b.get(section, {})
        for key in list(sa) + [k for k in sb if k not in sa]:
            if not same_value(_plain(sa.get(key)), _plain(sb.get(key))):
                out.append(f"{section}.{key}")
    return out
