"""Config files: YAML in and out, finding a config by path or packaged name, and
command-line overrides (`optim.lr=3e-4`). The schema and validation are in config.py.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from .schema import ALIASES, FIELDS, OPTIM_FIELDS, PACKAGED_CONFIGS, SCHEDULE_FIELDS, SECTIONS, Config, from_dict
from ..errors import ConfigError, UserError
from . import resume
from .knobs import BUILTIN_DATA_ARGS, BUILTIN_MODEL_ARGS, OPTIMIZERS, SCHEDULERS, switch_drops


class DuplicateKey(yaml.YAMLError):
    """A mapping sets the same key twice: YAML would keep the last value and lose the first silently."""

    def __init__(self, key: Any, first_line: int, second_line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _Loader(yaml.SafeLoader):
    """safe_load, plus '1e-3' read as a float (YAML 1.1 wants a dot), and a key set twice refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key of its own overrides on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:
                continue  # an unhashable key: the base class explains it
            if first != key_node.start_mark.line:
                raise DuplicateKey(key, first + 1, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    __import__("re").compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<config>") -> Any:
    """yaml.safe_load with messages that give the line and column."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except DuplicateKey as e:
        raise UserError(f"{source}: line {e.second_line}: duplicate key {e.key!r} (also at line {e.first_line}). "
                        "YAML would keep only the last one and silently lose the first; merge the two "
                        "into one (or delete one).") from None
    except yaml.constructor.ConstructorError as e:
        where = f" (line {e.problem_mark.line + 1})" if e.problem_mark else ""
        raise UserError(f"{source}{where}: {e.problem}. danlu reads plain YAML only; python tags "
                        "like !!python/object are refused because loading them could run code.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{source}:{where}: YAML syntax error: {problem}. Fix the file and run again "
                        f"(check indentation and that every 'key: value' has a space after the colon).") from None


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, [a, b] for short lists of plain values."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def dump_yaml(d: dict[str, Any]) -> str:
    return yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def find_config(path: str | None) -> Path:
    """The config file a user named: a path, or the name of a packaged config."""
    if path is None:
        return PACKAGED_CONFIGS / "default.yaml"
    p = Path(path)
    if p.is_file():
        return p
    for cand in (PACKAGED_CONFIGS / path, PACKAGED_CONFIGS / f"{path}.yaml"):
        if cand.is_file():
            return cand
    shipped = ", ".join(sorted(x.stem for x in PACKAGED_CONFIGS.glob("*.yaml")))
    raise UserError(f"config file not found: {path}. Give a path to a YAML file, or one of the "
                    f"packaged configs: {shipped}.")


_PLAIN_KEY = re.compile(r"^[A-Za-z_]\w*(\.\w+)*$")


def parse_overrides(items: list[str], raw: dict | None = None) -> list[tuple[str, Any]]:
    """'optim.lr=3e-4' pairs, values parsed as YAML scalars.

    A key that is not a plain dotted name (`optim\\.lr`, `.*lr`), or whose first part is no section
    (`lr`, `max_steps`), is refused with the config keys it most likely meant (`raw`: the config
    file's own keys count too)."""
    out = []
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value. Write it like optim.lr=3e-4.")
        key, _, text = item.partition("=")
        key = key.strip()
        if not _PLAIN_KEY.match(key):
            raise UserError(f"override '{item}': '{key}' is not a config key; keys are plain dotted names like "
                            f"optim.lr (no patterns, escapes or spaces).{_advice(key, raw)}")
        if key.split(".")[0] not in SECTIONS:
            raise UserError(f"override {item!r}: a key starts with its section ({', '.join(SECTIONS)})."
                            f"{_advice(key, raw)}")
        if text.startswith("="):
            raise UserError(f"override {item!r}: one '=' between the key and the value, like {key}=3")
        value = parse_yaml(text, source=f"override {key}") if text.strip() else None
        out.append((key, value))
    return out


def known_keys(raw: dict | None = None) -> list[str]:
    """Every dotted key a config can hold (the schema's, every optimizer's and scheduler's, the
    built-in models' and datasets' args) and the keys `raw` (a config file) holds."""
    keys: dict[str, None] = {}
    for section in SECTIONS:
        fields = OPTIM_FIELDS if section == "optim" else SCHEDULE_FIELDS if section == "schedule" else FIELDS[section]
        keys.update((f"{section}.{k}", None) for k in fields)
    for section, table in (("optim", OPTIMIZERS), ("schedule", SCHEDULERS)):
        for _cls, _default, knobs in table.values():
            keys.update((f"{section}.{k}", None) for k in knobs)
    for section, table in (("model", BUILTIN_MODEL_ARGS), ("data", BUILTIN_DATA_ARGS)):
        for args in table.values():
            keys.update((f"{section}.args.{k}", None) for k in args)

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str):
                    keys[f"{prefix}{k}"] = None
                    walk(f"{prefix}{k}.", v)
    walk("", raw if isinstance(raw, dict) else {})
    return [k for k in keys if "." in k]


def suggest_keys(key: str, known: list[str]) -> list[str]:
    """The known keys `key` most likely means: `optim\\.lr` and `.*lr` -> optim.lr, `lr` -> optim.lr,
    `max_step` -> train.max_steps, `Optim.LR` -> optim.lr."""
    plain = re.sub(r"\.+", ".", re.sub(r"[^\w.]", ".", key)).strip(".").lower()
    if not plain:
        return []
    lower = {k.lower(): k for k in known}
    if plain in lower:
        return [lower[plain]]
    leaf = plain.rsplit(".", 1)[-1]
    leaf = ALIASES.get(leaf, leaf)
    section = plain.split(".")[0]
    same = [k for k in known if k.rsplit(".", 1)[-1].lower() == leaf]
    if same:
        return sorted(same, key=lambda k: (k.split(".")[0] != section, len(k)))[:3]
    close = difflib.get_close_matches(plain, list(lower), n=3, cutoff=0.6)
    if not close:  # the leaf alone: `max_step` -> train.max_steps
        leaves: dict[str, list[str]] = {}
        for k in lower:
            leaves.setdefault(k.rsplit(".", 1)[-1], []).append(k)
        close = [k for near in difflib.get_close_matches(leaf, list(leaves), n=2, cutoff=0.75) for k in leaves[near]]
    return [lower[k] for k in close[:3]]


def _advice(key: str, raw: dict | None) -> str:
    known = known_keys(raw)
    section = re.sub(r"\W", "", key.split(".")[0]).lower()
    if section in SECTIONS and not re.search(r"\w", key[len(key.split(".")[0]):]):  # `optim.*`: which key?
        under = [k for k in known if k.startswith(f"{section}.") and k.count(".") == 1]
        return f" The keys of {section} include: {', '.join(k.split('.', 1)[1] for k in under[:12])}" + \
            (" ..." if len(under) > 12 else "") + "; `danlu check CONFIG` prints the config's."
    near = suggest_keys(key, known)
    if near:
        return f" Did you mean {' or '.join(near)}?"
    return " `danlu check CONFIG` prints every key of the config."


# The sections whose kind (`name`) decides which other keys apply, and where those keys live.
_KIND_KEYS = {"optim": (), "schedule": (), "model": ("args",), "data": ("args",)}


def _kind_default(section: str) -> str:
    return (OPTIM_FIELDS if section == "optim" else SCHEDULE_FIELDS if section == "schedule"
            else FIELDS[section])["name"].default


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]]) -> list[str]:
    """Set dotted keys in the raw dict; returns notes on the base config's keys a kind switch dropped.

    A key given on the command line always stays (its builder or the schema says if it does not
    fit); a kind switch (optim.name, schedule.name, model.name, data.name set to another kind)
    drops only what the base config held for the old kind (knobs.switch_drops, the one rule).
    """
    old_names = {s: (raw.get(s) or {}).get("name", _kind_default(s)) if isinstance(raw.get(s), dict)
                 else _kind_default(s) for s in _KIND_KEYS}
    for key, value in overrides:
        parts = key.split(".")
        node = raw
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    explicit = [k for k, _ in overrides]
    notes: list[str] = []
    for section, under in _KIND_KEYS.items():
        sec = raw.get(section)
        new = sec.get("name") if isinstance(sec, dict) else None
        if not isinstance(new, str) or new == old_names[section]:
            continue
        prefix = ".".join((section, *under))
        holder = sec
        for part in under:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        base = [k for k in holder if k != "name" and not _given(f"{prefix}.{k}", explicit)]
        for k, why in switch_drops(section, str(old_names[section]), new, base).items():
            del holder[k]
            notes.append(f"{prefix}.{k} dropped: {why}")
    return notes


def _given(path: str, explicit: list[str]) -> bool:
    """True when `path` or a section above it was set on the command line."""
    return any(path == k or path.startswith(k + ".") for k in explicit)


def load_config(path: str | None = None, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a config; raises UserError/ConfigError for bad input."""
    file = find_config(path)
    try:
        text = file.read_text()
    except OSError as e:
        raise UserError(f"cannot read config {file}: {e.strerror}") from None
    raw = parse_yaml(text, source=str(file))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"the file must hold a mapping of sections ({', '.join(SECTIONS)})"], str(file))
    pairs = parse_overrides(overrides or [], raw)
    notes = apply_overrides(raw, pairs)
    cfg = _validated(raw, str(file), overrides or [], pairs)
    cfg.notes = notes
    return cfg


def _validated(raw: dict, source: str, overrides: list[str], pairs: list[tuple[str, Any]]) -> Config:
    """from_dict, with each problem in a key the command line set marked as coming from there:
    the file named in the message does not hold that value, and the person should not look for it."""
    try:
        return from_dict(raw, source=source)
    except ConfigError as e:
        if not pairs:
            raise
        given = {key: item for (key, _), item in zip(pairs, overrides)}
        marked = []
        for problem in e.problems:
            hit = next((item for key, item in given.items()
                        if problem.startswith((key + ":", key + "[", key + ".")) or f"key {key}" in problem), None)
            marked.append(f"{problem} (from the command line: {hit})" if hit else problem)
        raise ConfigError(marked, e.source) from None


def config_for_resume(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The config a run was made with (its config.yaml), with overrides applied."""
    p = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise UserError(f"resume: {run_dir} is not a run directory. Give one under runs/, "
                        "e.g. danlu run --resume runs/default-20260101-120000")
    if not p.is_file():
        raise UserError(f"resume: {run_dir} has no config.yaml, so it is not a danlu run directory.")
    raw = parse_yaml(p.read_text(), str(p)) or {}
    before = from_dict(copy.deepcopy(raw), source=str(p)).to_dict()
    pairs = parse_overrides(overrides or [], raw)
    notes = apply_overrides(raw, pairs)
    cfg = _validated(raw, str(p), list(overrides or []), pairs)
    # refused before anything runs (no torch, nothing written): what would make it another run
    found = resume.changes(before, cfg.to_dict())
    refused = [c for c in found if c.kind == resume.Kind.REFUSED]
    if refused:
        raise UserError(resume.refusal(str(run_dir), refused, list(overrides or [])))
    cfg.notes = notes
    return cfg


def config_for_warm_start(source: str | Path, path: str | None, overrides: list[str] | None = None) -> Config:
    """The config of a new run started from another run's checkpoint (`danlu run --warm-start`).

    `path` names a config file; without one, the old run's own config.yaml is the base. Either
    way the overrides apply, and the lineage (run.parent, run.parent_step) is the new run's.
    """
    src = Path(source)
    if not src.exists():
        raise UserError(f"warm start: {source} not found. Give a run directory (its newest good checkpoint is "
                        "used) or a checkpoint file, e.g. danlu run --warm-start runs/default-20260101-120000")
    if path is not None:
        cfg = load_config(path, overrides)
    else:
        run_dir = src if src.is_dir() else src.parent.parent  # RUN/checkpoints/step-N.pt
        p = run_dir / "config.yaml"
        if not p.is_file():
            raise UserError(f"warm start: {run_dir} has no config.yaml to start from. Give a config too: "
                            f"danlu run CONFIG --warm-start {source}")
        raw = parse_yaml(p.read_text(), str(p)) or {}
        if isinstance(raw.get("run"), dict):
            for k in ("parent", "parent_step"):
                raw["run"].pop(k, None)
        pairs = parse_overrides(overrides or [], raw)
        notes = apply_overrides(raw, pairs)
        cfg = _validated(raw, str(p), list(overrides or []), pairs)
        cfg.notes = notes
    cfg.run.parent = cfg.run.parent_step = None  # the Trainer names the run it starts from
    return cfg
