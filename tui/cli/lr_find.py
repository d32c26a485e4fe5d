"""`danlu lr-find CONFIG [key=value ...]`: the LR range test before a run, as text and JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lr-find", help="find a learning rate with an LR range test (Smith) before training",
                       usage="%(prog)s [CONFIG] [key=value ...] [--start START] [--end END] [--steps STEPS]\n"
                             "                     [--apply] [--out FILE.json]",
                       description="Train a fresh model from CONFIG for a few steps while the LR grows "
                                   "exponentially from --start to --end; print the loss against the LR and "
                                   "suggest an LR. See docs/techniques.md.")
    p.add_argument("words", nargs="*", metavar="[CONFIG] [key=value ...]")
    p.add_argument("--start", type=float, default=1e-7, help="the first LR (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="the last LR (default 10)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps in the sweep (default 100)")
    p.add_argument("--apply", action="store_true",
                   help="write the suggestion into CONFIG's optim.lr (its comments kept)")
    p.add_argument("--out", metavar="FILE.json",
                   help="where to save the result (default: RUN.OUT_DIR/lr_find/NAME-TIME.json)")


def run_lr_find(args: argparse.Namespace) -> int:
    from danlu.engine.config.files import find_config, load_config
    from danlu.engine.errors import UserError
    from danlu.engine.loop.lr_find import Sweep

    from .main import split_words

    path, overrides = split_words(args.words)
    sw = Sweep(start=args.start, end=args.end, steps=args.steps)
    try:
        sw.check()
    except ValueError as e:
        raise UserError(f"lr-find: {e}. Example: danlu lr-find CONFIG --start 1e-6 --end 1 --steps 100") from None
    if args.apply and path is None:
        raise UserError("lr-find --apply writes the suggestion into a config file: name one, "
                        "e.g. danlu lr-find configs/my.yaml --apply")
    cfg = load_config(path, overrides)
    from danlu.engine.loop.lr_find_run import before_run, save_result  # torch loads here

    tty = sys.stderr.isatty()

    def progress(i: int, lr: float, loss: float) -> None:
        if tty:
            print(f"\rstep {i}/{sw.steps}  lr {lr:.3g}  loss {loss:.4g}   ", end="", file=sys.stderr, flush=True)

    print(f"LR range test: {sw.steps} steps, lr {sw.start:g} -> {sw.end:g}, on a fresh {cfg.model.name} "
          f"({cfg.optim.name}, batch {cfg.data.batch_size * cfg.train.grad_accum})", file=sys.stderr)
    res = before_run(cfg, sw, progress)
    if tty:
        print(file=sys.stderr)

    from danlu.tui.lr_curve import legend, render_curve, summary, table
    for line in render_curve(res.lrs, res.losses, res.smoothed, res.suggestion, res.min_over_10):
        print(line)
    print(legend(res.suggestion, res.min_over_10))
    print()
    for line in table(res.lrs, res.losses, res.smoothed):
        print(line)
    print()
    for line in summary(res.suggestion, res.min_over_10, res.rule, res.stopped):
        print(line)

    out = Path(args.out) if args.out else (Path(cfg.run.out_dir) / "lr_find"
                                           / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    try:
        save_result(res, out, config=str(find_config(path)), overrides=overrides,
                    sweep={"start": sw.start, "end": sw.end, "steps": sw.steps})
    except OSError as e:
        raise UserError(f"lr-find: cannot write {out}: {e.strerror or e}. Give another --out "
                        "(the result above is not saved)") from None
    print(f"saved: {out}")

    if args.apply:
        if res.suggestion is None:
            print("--apply: no suggestion, the config is unchanged", file=sys.stderr)
            return 1
        _apply(Path(path), res.suggestion, overrides)
    return 0


def _apply(path: Path, lr: float, overrides: list[str]) -> None:
    from danlu.engine.config.yaml_edit import edit
    value = float(f"{lr:.3g}")  # three digits: what the measurement supports
    text = path.read_text()
    path.write_text(edit(text, {"optim.lr": value}))
    print(f"applied: optim.lr = {value:g} in {path}")
    if any(w.startswith("optim.lr=") for w in overrides):
        print("note: optim.lr was also given on the command line; the file now holds the suggestion",
              file=sys.stderr)


def result_json(path: Path) -> dict:
    """A saved result, for tools and tests."""
    return json.loads(path.read_text())
