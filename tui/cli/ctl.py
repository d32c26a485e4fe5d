"""`danlu ctl RUN ACTION`: one command to a live run over its control socket, for scripts and cron.

Prints the engine's answer (applied at step N, old -> new; or rejected, with the reason) and
returns 0 (applied), 1 (rejected) or 2 (bad input, no such run, not live). Values are checked
against the hot table's bounds (engine/config/hot.py) before anything is sent. No torch.
"""

from __future__ import annotations

import sys
from glob import escape as glob_escape
from pathlib import Path

from danlu.engine.config import hot
from danlu.engine.control import events as ev
from danlu.engine.control import socket_client as sc
from danlu.engine.errors import UserError

EXIT_APPLIED, EXIT_REJECTED, EXIT_BAD = 0, 1, 2
ACTIONS = ("pause", "resume", "save", "stop", "eval", "lr", "set", "profile", "freeze", "unfreeze")
SIMPLE = {"pause": ev.pause, "resume": ev.resume, "save": ev.save_checkpoint, "stop": ev.stop,
          "eval": ev.eval_now}
# How long an answer may take: an eval or a save happens at the next step boundary, after the step under way.
ANSWER_TIMEOUT_S = 300.0


def find_run(word: str, root: Path | None = None) -> Path:
    """A run directory: `word` itself, or the one run under `root` (./runs) whose name starts with it."""
    p = Path(word)
    if p.is_dir() and ((p / "state.json").is_file() or (p / "config.yaml").is_file()):
        return p
    root = root or Path("runs")
    if "/" in word:  # runs/defa: a prefix inside that folder
        root, word = p.parent, p.name
    where = root.absolute()
    if not root.is_dir():
        if p.is_dir():
            raise UserError(f"{p.absolute()} is not a run directory (no state.json or config.yaml in it)")
        raise UserError(f"no run {word!r}: there is no folder {where}. Give a run directory, or run this where "
                        "./runs is (`danlu ls FOLDER` lists the runs in another folder)")
    matches = sorted(d for d in root.glob(f"{glob_escape(word)}*") if d.is_dir()) if word else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if Path(word).is_dir() and "/" not in word:
            raise UserError(f"{Path(word).absolute()} is not a run directory (no state.json or config.yaml in it), "
                            f"and no run in {where} has a name starting with {word!r}")
        raise UserError(f"no run {word!r} in {where}: give a run directory, or the start of a run's name "
                        f"there (`danlu ls {root}` lists them)")
    names = ", ".join(m.name for m in matches[:6]) + (" ..." if len(matches) > 6 else "")
    raise UserError(f"{word!r} matches {len(matches)} runs in {where} ({names}): give more of the name")


USAGE = "usage: danlu ctl RUN ACTION [VALUE ...]"
ACTIONS_HELP = ("pause | resume | save | stop | eval | lr VALUE | set KEY=VALUE | profile [N] | freeze REGEX | "
                "unfreeze REGEX [LR_MULT]")


class ActionError(UserError):
    """Bad words for one action: said as `danlu ctl ACTION: ...`."""

    def __init__(self, action: str, message: str):
        super().__init__(message)
        self.action = action


def unknown_action(action: str, run: str | None = None) -> UserError:
    """An action that is none of ACTIONS: the nearest one, or RUN and ACTION the wrong way round."""
    import difflib
    if run is not None and run in ACTIONS:
        return UserError(f"unknown action {action!r}: RUN comes first, then the action: danlu ctl {action} {run}")
    near = difflib.get_close_matches(action.lower(), ACTIONS, n=1, cutoff=0.5)
    hint = f"did you mean {near[0]}? " if near else ""
    return UserError(f"unknown action {action!r}; {hint}actions: {', '.join(ACTIONS)}")


def build_command(action: str, values: list[str], current_lrs: list[float] | None = None) -> ev.Command:
    """The Command for an action and its words; UserError (exit 2) naming what to type instead."""
    from danlu.tui.parsing import BadInput, check_lr, parse_hparam, parse_lr
    try:
        if action in SIMPLE:
            if values:
                raise BadInput(f"`{action}` takes no value")
            return SIMPLE[action]()
        if action == "lr":
            if len(values) != 1:
                raise BadInput("`lr` takes one value: 3e-4, or a factor x0.5, *2, /2")
            change = parse_lr(values[0])
            check_lr(current_lrs or [], change)
            return ev.set_lr(change.value, factor=change.factor)
        if action == "set":
            if len(values) != 1 or "=" not in values[0]:
                raise BadInput("`set` takes KEY=VALUE, e.g. set weight_decay=0.01; hot settings: "
                               + ", ".join(hot.HOT))
            key, text = values[0].split("=", 1)
            name = hot.BY_PATH[key].name if key in hot.BY_PATH else key
            if name == "lr":
                return build_command("lr", [text], current_lrs)
            return ev.set_hparam(name, parse_hparam(name, text))
        if action == "profile":
            if len(values) > 1:
                raise BadInput("`profile` takes the number of steps to profile (default 5)")
            steps = _whole(values[0] if values else "5", "steps", 1, ev.PROFILE_MAX_STEPS)
            return ev.profile(steps)
        if action in ("freeze", "unfreeze"):
            if not values or len(values) > (2 if action == "unfreeze" else 1):
                raise BadInput(f"`{action}` takes a regex searched in parameter names, e.g. '^features\\.'"
                               + (" and an optional lr_mult for a new param group (default 1)"
                                  if action == "unfreeze" else ""))
            _regex(values[0])
            if action == "freeze":
                return ev.freeze(values[0])
            return ev.unfreeze(values[0], _positive(values[1]) if len(values) == 2 else 1.0)
    except BadInput as e:  # the words are the dialogs' too: their keys become ctl's commands here
        raise ActionError(action, str(e).replace("pause instead (space)", "pause instead: danlu ctl RUN pause")) \
            from None
    raise unknown_action(action)


def _whole(text: str, what: str, lo: int, hi: int) -> int:
    from danlu.tui.parsing import BadInput
    try:
        n = int(text)
    except ValueError:
        raise BadInput(f"{what} must be a whole number from {lo} to {hi}, got {text!r}") from None
    if not lo <= n <= hi:
        raise BadInput(f"{what} must be from {lo} to {hi}, got {n}")
    return n


def _positive(text: str) -> float:
    from danlu.tui.parsing import BadInput
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not x > 0 or x == float("inf"):
        raise BadInput(f"lr_mult must be a number > 0 (the new group's LR is optim.lr times it), got {text!r}")
    return x


def _regex(text: str) -> None:
    import re
    from danlu.tui.parsing import BadInput
    try:
        re.compile(text)
    except re.error as e:
        raise BadInput(f"{text!r} is not a valid regex ({e})") from None


def answer_text(a: ev.CommandApplied | ev.CommandRejected, cmd: ev.Command, run_dir: str | None) -> str:
    if isinstance(a, ev.CommandRejected):
        return f"rejected at step {a.step}: {a.reason}"
    from danlu.tui.describe import applied_text
    return f"applied at step {a.step}: {applied_text(a, cmd, run_dir)}"


def ctl(run: str, action: str, values: list[str], root: Path | None = None) -> int:
    if action not in ACTIONS:
        raise unknown_action(action, run)
    build_command(action, values)  # bad input is refused before looking for the run
    run_dir = find_run(run, root)
    try:
        client = sc.connect(run_dir, name="ctl")
    except sc.NotLive as e:
        raise UserError(f"{e}; `danlu ls` shows which runs are live") from None
    except sc.ProtocolError as e:
        raise UserError(str(e)) from None
    try:
        last = client.hello.get("last_metrics") or {}
        cmd = build_command(action, values, last.get("lrs"))
        try:
            answer = client.request(cmd, timeout=ANSWER_TIMEOUT_S)
        except sc.NotLive as e:
            raise UserError(f"{run_dir}: {e}") from None
        except TimeoutError as e:
            raise UserError(f"{run_dir}: {e}") from None
        print(answer_text(answer, cmd, str(run_dir.resolve())), flush=True)
        if isinstance(answer, ev.CommandApplied) and cmd.kind == ev.CommandKind.PROFILE:
            return _profile_result(client, run_dir)
    finally:
        client.close()
    return EXIT_APPLIED if isinstance(answer, ev.CommandApplied) else EXIT_REJECTED


def _profile_result(client: sc.Client, run_dir: Path) -> int:
    """A profile's answer comes when its window has run: wait for it, so a script gets the summary."""
    from danlu.tui.describe import profile_text
    try:
        for e in client.events(timeout=ANSWER_TIMEOUT_S):
            if isinstance(e, ev.ProfileDone):
                print(profile_text(e, str(run_dir.resolve())))
                return EXIT_APPLIED
    except (sc.NotLive, sc.CutOff, TimeoutError) as e:
        print(f"danlu ctl: the profile's result did not come ({e}); the run's events.jsonl has it if it ran",
              file=sys.stderr)
        return EXIT_BAD
    print("danlu ctl: the run ended before the profile's result came", file=sys.stderr)
    return EXIT_BAD


def main(args) -> int:
    if args.run is None or args.action is None:
        print(f"{USAGE}\nactions: {ACTIONS_HELP}\nRUN: a run directory, or the start of a run's name under ./runs "
              "(`danlu ls` lists them)", file=sys.stderr)
        return EXIT_BAD
    try:
        return ctl(args.run, args.action, args.values)
    except ActionError as e:
        print(f"danlu ctl {e.action}: {e}", file=sys.stderr)
        return EXIT_BAD
    except UserError as e:
        print(f"danlu ctl: {e}", file=sys.stderr)
        return EXIT_BAD
