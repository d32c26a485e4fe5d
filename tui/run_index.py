"""What the launcher lists: config files (and whether each would run) and run directories.

No textual, no torch.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from danlu.engine.config.schema import PACKAGED_CONFIGS
from danlu.engine.control.events import LIVE_STATES
from danlu.engine.store.run_lock import pid_alive



@dataclass(frozen=True)
class ConfigEntry:
    path: Path
    name: str
    packaged: bool
    about: str  # the file's first comment line


@dataclass(frozen=True)
class RunEntry:
    dir: Path
    name: str
    state: str               # as state.json says, or 'crashed' when its process is gone
    step: int | None
    total_steps: int | None
    best_val_loss: float | None
    updated: float | None    # unix time of the last state.json write
    pid: int | None


@dataclass(frozen=True)
class ConfigCheck:
    """Whether `danlu run CONFIG` would accept the file as it is, and if not, why."""

    ok: bool
    summary: str = ""                 # one short line for the list: "YAML error, line 3", "2 problems"
    problems: tuple[str, ...] = ()    # every problem, "line 3: ..." where the line is known
    yaml_error: bool = False          # the YAML itself does not parse (the form cannot show it)


SUMMARY_MAX = 32  # a single problem longer than this is summarised as "1 problem"


def summarize(checked) -> ConfigCheck:
    """A ConfigCheck from a editor_model.Checked."""
    if checked.ok:
        return ConfigCheck(True)
    problems = tuple(p.message if p.line is None or p.message.startswith("line ") else f"line {p.line + 1}: {p.message}"
                     for p in checked.problems)
    first = checked.problems[0]
    yaml_error = checked.raw is None and "YAML" in first.message
    if yaml_error:
        summary = "YAML error" + (f", line {first.line + 1}" if first.line is not None else "")
    elif len(problems) == 1 and len(first.message) <= SUMMARY_MAX:
        summary = first.message
    else:
        summary = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
    return ConfigCheck(False, summary, problems, yaml_error)


_checks: dict[Path, tuple[tuple[int, int], ConfigCheck]] = {}
_checks_lock = threading.Lock()


def check_config(path: Path) -> ConfigCheck:
    """Parse and validate a config file the way `danlu run` does; cached until its mtime or size changes."""
    from .editor_model import check  # yaml and the schema: only when a config is checked

    try:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
        with _checks_lock:
            hit = _checks.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        text = path.read_text()
    except OSError as e:
        return ConfigCheck(False, "cannot read", (f"cannot read {path}: {e.strerror}",))
    result = summarize(check(text))
    with _checks_lock:
        _checks[path] = (key, result)
    return result


def _about(path: Path) -> str:
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("#"):
                    return line.lstrip("#").strip()
                if line:
                    return ""
    except OSError:
        pass
    return ""


def scan_configs(cwd: Path, packaged: Path = PACKAGED_CONFIGS) -> list[ConfigEntry]:
    """./configs/*.yaml, then the packaged configs not already listed (the same file counts once)."""
    out, seen = [], set()
    for folder, is_packaged in ((cwd / "configs", False), (packaged, True)):
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            key = p.resolve()
            if key in seen:
                continue
            seen.add(key)
            shown = p if is_packaged else Path("configs") / p.name
            out.append(ConfigEntry(shown, p.stem, is_packaged, _about(p)))
    return out


def read_run(d: Path, alive: Callable[[int], bool] = pid_alive) -> RunEntry | None:
    """One run directory from its state.json; None if it is not a run directory."""
    p = d / "state.json"
    if not p.is_file():
        if (d / "config.yaml").is_file():
            return RunEntry(d, d.name, "unknown", None, None, None, None, None)
        return None
    try:
        s = json.loads(p.read_text())
    except (OSError, ValueError):
        return RunEntry(d, d.name, "unreadable", None, None, None, None, None)
    if not isinstance(s, dict):
        return RunEntry(d, d.name, "unreadable", None, None, None, None, None)
    state = str(s.get("state", "unknown"))
    pid = s.get("pid") if isinstance(s.get("pid"), int) else None
    if state in LIVE_STATES and (pid is None or not alive(pid)):  # its process is gone
        state = "crashed"

    def num(k, t):
        v = s.get(k)
        return t(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return RunEntry(d, d.name, state, num("step", int), num("total_steps", int), num("best_val_loss", float),
                    num("updated", float), pid)


def scan_runs(root: Path, alive: Callable[[int], bool] = pid_alive, limit: int = 200,
              live_first: bool = False) -> list[RunEntry]:
    """Run directories under `root`, most recently updated first (`live_first`: the live ones before all others)."""
    if not root.is_dir():
        return []
    runs = [r for d in root.iterdir() if d.is_dir() for r in [read_run(d, alive)] if r is not None]
    runs.sort(key=lambda r: (r.updated or 0.0, r.name), reverse=True)
    if live_first:
        runs.sort(key=lambda r: r.state not in LIVE_STATES)  # stable: each part stays newest first
    return runs[:limit]


TAIL_BYTES = 16384  # the last training line is in metrics.jsonl's last few kilobytes


def last_train(run_dir: Path) -> tuple[int | None, float | None]:
    """The newest training record's step and loss in metrics.jsonl (read from its end)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            lines = f.read().splitlines()
    except OSError:
        return None, None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the first, cut line of the tail, or one cut by a crash
        if isinstance(rec, dict) and "loss" in rec:
            loss, step = rec["loss"], rec.get("step")
            return (step if isinstance(step, int) else None,
                    float(loss) if isinstance(loss, (int, float)) else math.nan)
    return None, None


def fresh(r: RunEntry) -> RunEntry:
    """A live run with the step and time of its newest metrics.jsonl line: state.json is written at
    state changes and checkpoints only, metrics.jsonl within a second or two of every step."""
    if r.state not in LIVE_STATES:
        return r
    step, _loss = last_train(r.dir)
    try:
        mtime = (r.dir / "metrics.jsonl").stat().st_mtime
    except OSError:
        mtime = None
    steps = [s for s in (step, r.step) if s is not None]
    times = [t for t in (mtime, r.updated) if t is not None]
    return replace(r, step=max(steps) if steps else None, updated=max(times) if times else None)


def age(seconds: float | None) -> str:
    """'45s', '12m', '3h', '5d' ago; '–' when unknown."""
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
