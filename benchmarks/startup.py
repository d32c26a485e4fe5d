"""How fast does danlu answer: `danlu --help`, and the first dashboard frame of `danlu run`.

Not a test (never asserted). Run from the repository root (needs tmux for the frame):

    python -m benchmarks.startup
    python -m benchmarks.startup --repeats 10

Measured from outside, as a person waits for it:
- `danlu --help`: wall time of the whole process (subprocess.run), the console script
  the venv installed; `python -c pass` alongside as the floor of any Python process.
- first frame: `danlu run` (packaged default config, run dir in a temp folder) in a
  detached 120x40 tmux session; from just before `tmux new-session` until
  `tmux capture-pane` first shows the dashboard's status line (its "● STATE" marker
  and the Footer's keys), polled every 10 ms. Also when the first trained step shows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import load, machine, summary

DANLU = str(Path(sys.executable).parent / "danlu")


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def first_frame(cwd: str, timeout: float = 30.0) -> tuple[float, float | None]:
    """(seconds to the first dashboard frame, seconds to the first trained step shown)."""
    name = f"danlu-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    cmd = f"{DANLU} run run.out_dir={cwd}/runs data.num_workers=0; sleep 30"
    tmux = ["tmux", "-L", name]  # a server of its own: no race with a default server still exiting
    t0 = time.perf_counter()
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-c", cwd, cmd],
                   check=True)
    frame = step = None
    try:
        while time.perf_counter() - t0 < timeout:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name],
                                    capture_output=True, text=True).stdout
            now = time.perf_counter() - t0
            if frame is None and "●" in screen and "Quit" in screen:
                frame = now
            m = re.search(r"step (\d+)/\d+", screen)
            if frame is not None and m and int(m.group(1)) > 0:
                step = now
                break
            time.sleep(0.01)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    if frame is None:
        raise RuntimeError(f"no dashboard frame within {timeout}s; last screen:\n{screen}")
    return frame, step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    print(machine())
    rows = []
    timed([DANLU, "--help"])  # warm the file cache once
    helps, floors = [], []
    for _ in range(args.repeats):  # alternating, so load hits both alike
        helps.append(timed([DANLU, "--help"]))
        floors.append(timed([sys.executable, "-c", "pass"]))
    rows.append(("danlu --help", summary(helps)))
    rows.append(("python -c pass (floor)", summary(floors)))
    if shutil.which("tmux"):
        frames, steps = [], []
        with tempfile.TemporaryDirectory() as cwd:
            first_frame(cwd)  # warm-up (bytecode, file cache), dropped
            for _ in range(args.repeats):
                f, s = first_frame(cwd)
                frames.append(f)
                if s is not None:
                    steps.append(s)
        rows.append(("danlu run: first dashboard frame", summary(frames)))
        if steps:
            rows.append(("danlu run: first trained step on screen", summary(steps)))
    else:
        print("tmux not found: first-frame timing skipped")
    print(f"\n{'what':42} {'median s':>9} {'min':>7} {'max':>7}   ({args.repeats} runs)")
    for what, (m, lo, hi) in rows:
        print(f"{what:42} {m:9.3f} {lo:7.3f} {hi:7.3f}")
    print(f"\nload avg at the end: {load()}")


if __name__ == "__main__":
    main()
