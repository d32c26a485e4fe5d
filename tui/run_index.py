"""What the launcher lists: config files and run directories. No textual, no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def scan_runs(root: Path, alive: Callable[[int], bool] = pid_alive, limit: int = 200) -> list[RunEntry]:
    """Run directories under `root`, most recently updated first."""
    if not root.is_dir():
        return []
    runs = [r for d in root.iterdir() if d.is_dir() for r in [read_run(d, alive)] if r is not None]
    runs.sort(key=lambda r: (r.updated or 0.0, r.name), reverse=True)
    return runs[:limit]


def age(seconds: float | None) -> str:
    """'45s', '12m', '3h', '5d' ago; '–' when unknown."""
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
