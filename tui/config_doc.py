"""A config file as text: validation mapped to lines, and edits that keep comments.

No textual and no torch here: the editor's widgets call these, tests use them
directly. The text is the one source of truth; the form is a view of it, and
each form edit is a round trip through ruamel.yaml, which keeps comments,
blank lines, flow lists and quoting where they were.
"""

from __future__ import annotations

import copy
import difflib
import io
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from danlu.engine.config.schema import FIELDS, OPTIM_FIELDS, SCHEDULE_FIELDS, SECTIONS, Config, from_dict
from danlu.engine.config.files import parse_yaml
from danlu.engine.errors import ConfigError, UserError
from danlu.engine.config.knobs import OPTIM_COMMON, OPTIMIZERS, SCHEDULE_COMMON, SCHEDULERS, Knob

# Offered in the model Select; any torchvision classifier or module:callable works too (raw view).
MODEL_SUGGESTIONS = ("small_cnn", "mlp", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small",
                     "efficientnet_b0", "vit_b_16")
# Training-set sizes of the torchvision datasets, for the schedule preview's step count.
KNOWN_TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
SHAPES_DEFAULT_SIZE = 4000
# When the dataset's size is unknown, the preview draws epochs of this many steps.
PLACEHOLDER_STEPS_PER_EPOCH = 100


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()  # a value for edit(): remove the key


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


def split_path(path: str) -> list[str | int]:
    """'optim.param_groups[0].match' -> ['optim', 'param_groups', 0, 'match']."""
    return [int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


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
    table, common = (OPTIMIZERS, OPTIM_COMMON) if section == "optim" else (SCHEDULERS, SCHEDULE_COMMON)
    changes: dict[str, Any] = {f"{section}.name": name}
    notes = []
    sec = (raw or {}).get(section)
    own = table[name][-1] if name in table else {}
    if isinstance(sec, dict):
        for key in sec:
            if key in common or key in own:
                continue
            if any(key in entry[-1] for entry in table.values()):
                changes[f"{section}.{key}"] = DELETE
                notes.append(f"{section}.{key} dropped: {name} does not take it")
    return changes, notes


# --- editing, comments kept ----------------------------------------------------------

def _rt(text: str):
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the user wrote on one
    try:
        _, indent, bsi = load_yaml_guess_indent(text)
    except Exception:  # noqa: BLE001 - unguessable: the house default
        indent, bsi = 2, 0
    indent = indent or 2
    bsi = bsi or 0
    y.indent(mapping=indent, sequence=indent + bsi, offset=bsi)
    return y


class EditError(ValueError):
    """The text cannot be edited structurally (YAML syntax error, not a mapping)."""


def edit(text: str, changes: dict[str, Any]) -> str:
    """`text` with each dotted path set to its value (or removed for DELETE), comments kept."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    y = _rt(text)
    try:
        doc = y.load(text)
    except YAMLError as e:
        raise EditError(f"the YAML does not parse: {e}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditError("the file must hold a mapping of sections")
    for path, value in changes.items():
        segs = split_path(path)
        parent = doc
        for seg in segs[:-1]:
            nxt = parent.get(seg) if isinstance(parent, dict) else None
            if not isinstance(nxt, dict):
                if value is DELETE:
                    break
                nxt = CommentedMap()
                _put(parent, seg, nxt)
            parent = nxt
        else:
            key = segs[-1]
            if value is DELETE:
                _delete(parent, key)
            else:
                _assign(parent, key, value)
    buf = io.StringIO()
    y.dump(doc, buf)
    out = buf.getvalue()
    if out.strip() == "{}":
        return ""
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind: 1 is not 1.0 and not true (the text would change)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and isinstance(a, float) == isinstance(b, float)
    return type(a) is type(b) and a == b if not isinstance(a, str) else isinstance(b, str) and a == b


def _node(value: Any) -> Any:
    """A ruamel node for a plain value: short lists in flow style, like [0.9, 0.999]."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _node(v)
        return m
    if isinstance(value, (list, tuple)):
        s = CommentedSeq(_node(v) for v in value)
        s.fa.set_flow_style()
        return s
    return value


def _assign(parent: Any, key: Any, value: Any) -> None:
    from ruamel.yaml.comments import CommentedMap

    old = parent.get(key, DELETE) if isinstance(parent, dict) else DELETE
    if isinstance(old, CommentedMap) and isinstance(value, dict):
        # key by key, so comments inside (data.args: size: 6000  # ...) survive
        for k in [k for k in old if k not in value]:
            _delete(old, k)
        for k, v in value.items():
            _assign(old, k, v)
        return
    if old is not DELETE and same_value(old, value):
        return
    _put(parent, key, _node(value))


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """The mapping and key that end `node` in the text (where trailing blank lines hang)."""
    from ruamel.yaml.comments import CommentedMap

    while isinstance(node, CommentedMap) and len(node):
        k = list(node)[-1]
        child = node[k]
        if isinstance(child, CommentedMap) and len(child) and not child.fa.flow_style():
            node = child
            continue
        return node, k
    return None


def _take_tail(node: Any) -> str | None:
    """Detach the blank lines and comments that follow `node`'s last line; return them."""
    slot = _last_slot(node)
    if slot is None:
        return None
    m, k = slot
    entry = m.ca.items.get(k)
    if not entry or len(entry) < 3 or entry[2] is None:
        return None
    tok = entry[2]
    head, _, rest = tok.value.partition("\n")
    if not rest:
        return None
    if head.strip():
        tok.value = head + "\n"
    else:
        entry[2] = None
        if not any(entry):
            del m.ca.items[k]
    return rest


def _give_tail(node: Any, key: Any, rest: str) -> None:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    value = node[key]
    slot = _last_slot(value) if hasattr(value, "ca") and not getattr(value.fa, "flow_style", lambda: True)() else None
    m, k = slot if slot else (node, key)
    entry = m.ca.items.setdefault(k, [None, None, None, None])
    if entry[2] is not None:
        entry[2].value = entry[2].value.rstrip("\n") + "\n" + rest
    else:
        entry[2] = CommentToken("\n" + rest, CommentMark(0), None)


def _put(parent: Any, key: Any, value: Any) -> None:
    """Set or add a key; a new last key takes over the blank lines that closed the mapping."""
    if key in parent:
        parent[key] = value
        return
    tail = _take_tail(parent)
    parent[key] = value
    if tail:
        _give_tail(parent, key, tail)


def _delete(parent: Any, key: Any) -> None:
    if not isinstance(parent, dict) or key not in parent:
        return
    keys = list(parent)
    tail = _take_tail(parent) if keys[-1] == key else None
    del parent[key]
    parent.ca.items.pop(key, None)
    if tail and len(parent):
        _give_tail(parent, list(parent)[-1], tail)


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


# --- the schedule preview's run length ----------------------------------------------

def estimate_steps(cfg: Config) -> tuple[int, int, bool]:
    """(steps_per_epoch, total_steps, exact) the way the trainer counts them.

    Exact for shapes and the torchvision datasets; otherwise epochs of a placeholder length.
    """
    d = cfg.data
    n: int | None = None
    if d.name == "shapes":
        n = int(d.args.get("size", SHAPES_DEFAULT_SIZE))
    elif d.name in KNOWN_TRAIN_SIZES:
        n = KNOWN_TRAIN_SIZES[d.name]
    exact = n is not None
    if n is not None:
        vf = float(d.val_fraction or 0.0)
        n_val = min(n - 1, max(1, round(n * vf))) if vf > 0 and n > 1 else 0
        spe = (n - n_val) // d.batch_size // cfg.train.grad_accum
        if spe < 1:
            exact, spe = False, PLACEHOLDER_STEPS_PER_EPOCH
    else:
        spe = PLACEHOLDER_STEPS_PER_EPOCH
    total = cfg.train.epochs * spe
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    return spe, max(1, total), exact


# --- saving -----------------------------------------------------------------------------

def unified_diff(old: str, new: str, name: str) -> str:
    """What saving would change, as a unified diff ('' when nothing)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{name} (on disk)", f"{name} (edited)"))


# Settings a running trainer takes between steps (set_lr / set_hparam); the rest need a restart.
HOT_PATHS = {
    "optim.lr": "set_lr",
    "optim.weight_decay": "weight_decay", "optim.momentum": "momentum", "optim.betas": "betas",
    "train.grad_clip": "grad_clip", "train.eval_every": "eval_every",
    "train.checkpoint_every": "checkpoint_every", "monitor.log_every": "log_every",
}


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
