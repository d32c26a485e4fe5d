"""Errors a person can act on. Imports nothing heavy."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, arguments, checkpoint, data path).

    The CLI prints the message without a traceback and exits with code 2.
    """

    exit_code = 2


class ConfigError(UserError):
    """One or more config problems, each 'key.path: what is wrong (the fix)'."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            msg = f"{head}config problem:\n  {self.problems[0]}"
        else:
            lines = "\n  ".join(self.problems)
            msg = f"{head}{len(self.problems)} config problems:\n  {lines}"
        super().__init__(msg)


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, truncated, unsafe or for another model."""
