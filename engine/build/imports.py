"""Resolve the user's own code from "package.module:callable" or "path/to/file.py:callable"."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError


def resolve_target(spec: str, what: str) -> Callable[..., Any]:
    """Return the callable that `spec` names; `what` is the config key shown in errors."""
    module_part, sep, attr_path = spec.rpartition(":")
    if not sep or not module_part or not attr_path:
        raise UserError(f"{what}: {spec!r} is not an import target. "
                        "Write it as package.module:callable or path/to/file.py:callable.")
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        module = _load_file(module_part, what)
    else:
        module = _import_module(module_part, what)
    obj: Any = module
    for name in attr_path.split("."):
        if not hasattr(obj, name):
            raise UserError(f"{what}: module {module_part!r} has no attribute {attr_path!r}. "
                            f"Check the name after the ':' in {spec!r}.")
        obj = getattr(obj, name)
    if not callable(obj):
        raise UserError(f"{what}: {spec!r} is a {type(obj).__name__}, not a callable. "
                        "Point it at a function or class.")
    return obj


def _import_module(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not _is_missing(e, name):
            raise  # the user's module exists but one of its own imports failed: show the real error
    # A user running `danlu run` from their project expects its modules to be found, as
    # `python -m` would; cwd goes last so it never shadows an installed package.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not _is_missing(e, name):
                raise
    raise UserError(f"{what}: cannot import module {name!r} (searched the installed packages and {cwd}). "
                    "Run from the folder that holds it, add it to PYTHONPATH, or use path/to/file.py:callable.")


def _is_missing(err: ModuleNotFoundError, name: str) -> bool:
    """True when the module named in the spec (or a parent package of it) is what is missing."""
    missing = err.name or ""
    return missing == name or name.startswith(missing + ".")


def _load_file(path_str: str, what: str):
    path = Path(path_str).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.is_file():
        raise UserError(f"{what}: file {path_str!r} not found (looked at {path}). "
                        "Give a path relative to the folder you run from, or an absolute one.")
    # One module per resolved file, so importing it twice returns the same classes.
    mod_name = "danlu_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{what}: cannot load {path} as Python code. Point it at a .py file.")
    module = importlib.util.module_from_spec(spec)
    # Files beside the user's file (its helpers) must be importable from it, as with `python file.py`.
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.append(parent)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module
