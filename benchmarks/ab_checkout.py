"""One variant of benchmarks.overhead in this checkout against another checkout (another commit).

Not a test (never asserted). Run from the repository root of the newer checkout:

    git worktree add --detach /tmp/base <commit>
    python -m benchmarks.ab_checkout --base /tmp/base --variant b --regime mlp --rounds 12

Each run is a process of its own (benchmarks.overhead --one), as `danlu run` is. The two
checkouts alternate within each round, and the order flips every round, so a slow minute
on a shared machine hits both sides of a pair. The other checkout's danlu is imported from
a temporary folder that links its engine/ and tui/ as danlu.engine and danlu.tui (ahead of
this checkout's editable install on sys.path). Prints steps/s per side and the paired
ratio this/base: median with a distribution-free 95% interval (benchmarks.common.median_ci).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import load, machine, median_ci

HERE = Path(__file__).resolve().parents[1]


def _run(root: Path, env_path: str | None, regime: str, variant: str) -> tuple[float, int, float]:
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = env_path + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "benchmarks.overhead", "--regime", regime, "--one", variant],
                         cwd=root, env=env, capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the other checkout (e.g. a git worktree at the base commit)")
    p.add_argument("--variant", default="b")
    p.add_argument("--regime", default="mlp")
    p.add_argument("--rounds", type=int, default=12)
    args = p.parse_args()
    base = Path(args.base).resolve()
    print(machine())
    with tempfile.TemporaryDirectory() as shim:
        (Path(shim) / "danlu").mkdir()
        for part in ("engine", "tui"):
            (Path(shim) / "danlu" / part).symlink_to(base / part)
        sides = {"this": (HERE, None), "base": (base, shim)}
        rates: dict[str, list[float]] = {"this": [], "base": []}
        cpu_rates: dict[str, list[float]] = {"this": [], "base": []}   # steps per training-thread CPU second
        for r in range(args.rounds):
            for side in (("this", "base") if r % 2 == 0 else ("base", "this")):
                dt, n, cpu = _run(*sides[side], args.regime, args.variant)
                rates[side].append(n / dt)
                cpu_rates[side].append(n / cpu)
            print(f"round {r + 1}: this {rates['this'][-1]:.1f}  base {rates['base'][-1]:.1f} steps/s  ({load()})",
                  flush=True)
    for name, table in (("steps/s", rates), ("steps/cpu-s", cpu_rates)):
        ratios = [a / b for a, b in zip(table["this"], table["base"])]
        lo, hi = median_ci(ratios)
        for side, xs in table.items():
            print(f"{side:5} {statistics.median(xs):8.1f} {name}  (min {min(xs):.1f}, max {max(xs):.1f})")
        print(f"this/base paired, {name}: {statistics.median(ratios):.3f} [{lo:.3f}-{hi:.3f}] over {len(ratios)} "
              f"rounds (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
