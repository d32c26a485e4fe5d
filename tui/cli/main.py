"""The `danlu` command line. Loads neither torch nor textual until a command needs them."""

from __future__ import annotations

import argparse
import os
import re
import sys

USAGE_EXAMPLES = """\
examples:
  danlu run                                  train the default config with the live dashboard
  danlu run configs/my.yaml optim.lr=3e-4    a config file plus dotted overrides
  danlu run --headless schedule.name=onecycle
  danlu run --resume runs/default-20260101-120000
  danlu run --warm-start runs/default-20260101-120000 data.batch_size=32
                                             a new run from that run's weights, with changes
  danlu check configs/my.yaml optim.name=sgd  validate and print the resolved config
  danlu edit configs/my.yaml                 the config editor
  danlu attach                               the dashboard of the live run under ./runs
  danlu run --detach configs/my.yaml         in the background; prints the run directory
  danlu ctl default lr x0.5                  one command to a live run (a name prefix under ./runs)
  danlu ls                                   the runs under ./runs, live ones with their pid
  danlu lr-find configs/my.yaml --apply      an LR range test; its suggestion into optim.lr

exit codes: 0 finished or stopped on request, 1 the run failed (a crash checkpoint is kept when
it can be), 2 bad input (or --resume of a run another process is training), 3 stopped on a
fault: NaN/inf, or out of memory without a dashboard.
danlu ctl: 0 applied, 1 rejected (the reason is printed), 2 bad input, no such run, or not live.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="danlu",
        description="danlu (丹炉): train a PyTorch model with a live terminal dashboard, and steer it mid-run.",
        epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train a config with the live dashboard (or --headless)",
                         usage="%(prog)s [CONFIG] [key=value ...] [--headless] [--detach]\n"
                               "                 [--resume RUN_DIR | --warm-start RUN_OR_CHECKPOINT]",
                         description="Train CONFIG (default: the packaged configs/default.yaml). "
                                     "Extra key=value words override config keys, e.g. optim.lr=3e-4.")
    run.add_argument("words", nargs="*", metavar="[CONFIG] [key=value ...]")
    run.add_argument("--headless", action="store_true", help="no dashboard: one compact progress line")
    run.add_argument("--detach", action="store_true",
                     help="run in the background, out of this terminal's session (output to output.log in the "
                          "run directory); prints the run directory once the run is up")
    run.add_argument("--log-to", help=argparse.SUPPRESS)  # --detach's child: its output file
    start = run.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest good checkpoint "
                       "(overrides: hot settings, train.max_steps/epochs and a few more; see docs/config.md)")
    start.add_argument("--warm-start", metavar="RUN_OR_CHECKPOINT",
                       help="start a new run from a run's newest good checkpoint (or a checkpoint file): "
                            "its config (or CONFIG) plus the overrides; any change allowed")

    check = sub.add_parser("check", help="validate a config and print it resolved",
                           usage="%(prog)s [CONFIG] [key=value ...]")
    check.add_argument("words", nargs="*", metavar="[CONFIG] [key=value ...]")

    att = sub.add_parser("attach", help="open the dashboard of a live run (started elsewhere, or detached)",
                         description="Open the dashboard of a live run over its control socket, with the "
                                     "whole history drawn. q detaches (the run goes on) or stops the run.")
    att.add_argument("run", nargs="?", metavar="RUN", help="a run directory or the start of a run's name "
                     "(default: the only live run under ./runs; a picker when there are several)")
    att.add_argument("--runs", metavar="FOLDER", help="where to look for runs (default ./runs, else run.out_dir)")

    edit = sub.add_parser("edit", help="open the config editor")
    edit.add_argument("config", nargs="?")

    from .lr_find import add_parser as add_lr_find
    add_lr_find(sub)

    ctl = sub.add_parser("ctl", help="send one command to a live run (exit 0 applied, 1 rejected, 2 bad input "
                                     "or not live)", usage="%(prog)s RUN ACTION [VALUE ...]",
                         description="One command to a live run over its control socket. RUN is a run directory "
                                     "or a name prefix under ./runs. Prints the engine's answer.")
    # optional here so that a missing one gets ctl's own usage line, with the actions (tui/cli/ctl.py)
    ctl.add_argument("run", nargs="?", metavar="RUN")
    ctl.add_argument("action", nargs="?", metavar="ACTION", help="pause | resume | save | stop | eval | lr VALUE | "
                                                                 "set KEY=VALUE | profile [N] | freeze REGEX | "
                                                                 "unfreeze REGEX [LR_MULT]")
    ctl.add_argument("values", nargs="*", metavar="VALUE")

    ls = sub.add_parser("ls", help="list runs as a plain table (state, step, loss, pid)")
    ls.add_argument("folder", nargs="?", metavar="FOLDER", help="default: ./runs")
    return p


_DOTTED_KEY = re.compile(r"^[A-Za-z_]\w*(\.\w+)+$")


def _is_override(word: str) -> bool:
    """key=value, or a bare dotted key like `optim.lr` that lost its value (the override parser explains)."""
    return "=" in word or (_DOTTED_KEY.match(word) is not None and not word.endswith((".yaml", ".yml"))
                           and not os.path.exists(word))


def split_words(words: list[str]) -> tuple[str | None, list[str]]:
    """The config and the overrides. The config is the first word unless that is an override; a
    config file named after overrides (`optim.lr=1e-3 configs/my.yaml`) is found there too."""
    if not words:
        return None, words
    if not _is_override(words[0]):
        return words[0], words[1:]
    for i, word in enumerate(words):
        if not _is_override(word) and (word.endswith((".yaml", ".yml")) or os.path.isfile(word)):
            return word, words[:i] + words[i + 1:]
    return None, words


# The commands whose free words are [CONFIG] [key=value ...]: they may stand before or after options.
WORD_COMMANDS = ("run", "check", "lr-find")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """parse_args, except that overrides written after an option (`run CONFIG --headless
    train.max_steps=5`) join the others instead of being 'unrecognized arguments'."""
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    sub = _subparser(parser, getattr(args, "command", None))
    if args.command in WORD_COMMANDS and not any(w.startswith("-") for w in extra):
        args.words = list(args.words) + extra
        return args
    unknown = [w for w in extra if w.startswith("-")] if args.command in WORD_COMMANDS else extra
    message = f"unrecognized arguments: {' '.join(unknown)}"
    options = [o for a in (sub or parser)._actions for o in a.option_strings if o.startswith("--")]
    import difflib
    close = difflib.get_close_matches(unknown[0].split("=", 1)[0], options, n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]}?)"
    (sub or parser).error(message)
    raise AssertionError("unreachable")  # error() exits


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader that has gone (`danlu ls | head -1`) shows here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - bad input is a message, not a traceback
        from danlu.engine.errors import UserError
        if isinstance(e, UserError):
            print(f"danlu: {e}", file=sys.stderr)
            return e.exit_code
        raise


# The exit status of a process killed by SIGPIPE (128 + 13), what `ls | head -1` tools give.
EXIT_PIPE = 141


def _reader_gone() -> int:
    """Stdout's reader has closed the pipe: nothing more to say, and no traceback for it."""
    try:  # what is still buffered goes nowhere, instead of failing again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _check(args.words)
    if args.command == "run":
        return _run(args)
    if args.command == "edit":
        return _edit(args.config)
    if args.command == "lr-find":
        from .lr_find import run_lr_find
        return run_lr_find(args)
    if args.command == "attach":
        from danlu.tui.attach import attach
        return attach(args.run, args.runs)
    if args.command == "ctl":
        from danlu.tui.cli.ctl import main as ctl_main
        return ctl_main(args)
    if args.command == "ls":
        from danlu.tui.cli.ls import ls
        return ls(args.folder)
    return _launcher()


def _check(words: list[str]) -> int:
    from danlu.engine.config.files import find_config, load_config
    from danlu.engine.config.preflight import preflight
    path, overrides = split_words(words)
    cfg = load_config(path, overrides)
    warnings = preflight(cfg)  # what `danlu run` checks before it starts, too
    print(f"# {find_config(path)}: valid")
    for note in cfg.notes:
        print(f"# note: {note}")
    for warning in warnings:
        print(f"# warning: {warning}")
    print(cfg.to_yaml(), end="")
    return 0


def _load_run_config(args: argparse.Namespace):
    path, overrides = split_words(args.words)
    if args.resume:
        if path is not None:
            from danlu.engine.errors import UserError
            raise UserError("--resume takes its config from the run directory; give only key=value overrides.")
        # before anything else (and before torch loads): one process trains a run directory at a time
        from danlu.engine.store.run_lock import RunBusy, busy_message, live_holder
        holder = live_holder(args.resume)
        if holder is not None:
            raise RunBusy(busy_message(args.resume, holder))
        from danlu.engine.config.files import config_for_resume
        return config_for_resume(args.resume, overrides)
    if getattr(args, "warm_start", None):
        from danlu.engine.config.files import config_for_warm_start
        return config_for_warm_start(args.warm_start, path, overrides)
    from danlu.engine.config.files import load_config
    return load_config(path, overrides)


def _run(args: argparse.Namespace) -> int:
    from danlu.engine.config.preflight import preflight
    cfg = _load_run_config(args)
    preflight(cfg, new_run=not args.resume)  # before the dashboard opens; the run logs the warnings
    if getattr(args, "detach", False):
        from danlu.tui.cli.detach import run_detached
        return run_detached(args, cfg)
    if getattr(args, "log_to", None):  # --detach's child
        from danlu.tui.cli.detach import adopt_log
        from danlu.tui.cli.headless import run_headless
        return run_headless(cfg, resume=args.resume, warm_start=getattr(args, "warm_start", None),
                            on_started=lambda run_dir: adopt_log(args.log_to, run_dir))
    if args.headless or not sys.stdout.isatty():
        if not args.headless:
            print("danlu: stdout is not a terminal; running headless", file=sys.stderr)
        from danlu.tui.cli.headless import run_headless
        return run_headless(cfg, resume=args.resume, warm_start=getattr(args, "warm_start", None))
    from danlu.tui import detach
    link = detach.fork() if detach.supported() else None  # the parent waits there, and exits (tui/detach.py)
    from danlu.tui.run_dashboard import run_dashboard
    return run_dashboard(cfg, resume=args.resume, warm_start=getattr(args, "warm_start", None), link=link)


def _edit(config: str | None) -> int:
    if config is None:
        return _launcher()
    from danlu.tui.editor_app import create_editor_app
    return _after(create_editor_app(config).run())


def _launcher() -> int:
    if not sys.stdout.isatty():
        build_parser().print_help()
        return 0
    from danlu.tui.editor_app import create_launcher_app
    return _after(create_launcher_app().run())


def _after(outcome) -> int:
    """Act on what the launcher or editor chose once the terminal is back: train or resume."""
    if outcome is None:
        return 0
    if outcome.action == "attach":
        print(f"danlu attach {outcome.path}", file=sys.stderr)
        from danlu.tui.attach import attach
        return attach(outcome.path)
    if outcome.action == "resume":
        print(f"danlu run --resume {outcome.path}", file=sys.stderr)
        return _run(argparse.Namespace(words=[], headless=False, resume=outcome.path))
    print(f"danlu run {outcome.path}", file=sys.stderr)
    return _run(argparse.Namespace(words=[outcome.path], headless=False, resume=None))


if __name__ == "__main__":
    sys.exit(main())
