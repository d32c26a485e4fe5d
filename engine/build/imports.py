"""Resolve the user's own code from "package.module:callable" or "path/to/file.py:callable".

Installed modules come first (the current directory is searched last, so a stray file never
shadows a package). When the installed module of that name cannot provide what the spec names
(`code:Net`, with the standard library's `code` in the way of the code.py beside you), the file
in the current directory is used instead, and a message that cannot find it names both.
"""

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
        local = _local_file(module_part)
        if local is not None and _lookup(module, attr_path) is _MISSING and not _same_file(module, local):
            module = _load_file(str(local), what)  # the installed one is in the way of the user's file
    obj = _lookup(module, attr_path)
    if obj is _MISSING:
        origin = getattr(module, "__file__", None)
        raise UserError(f"{what}: module {module_part!r}{f' ({origin})' if origin else ''} has no attribute "
                        f"{attr_path!r}. Check the name after the ':' in {spec!r}.")
    if not callable(obj):
        raise UserError(f"{what}: {spec!r} is a {type(obj).__name__}, not a callable. "
                        "Point it at a function or class.")
    return obj


_MISSING = object()


def _lookup(module: Any, attr_path: str) -> Any:
    """module.a.b for 'a.b', or _MISSING."""
    obj = module
    for name in attr_path.split("."):
        if not hasattr(obj, name):
            return _MISSING
        obj = getattr(obj, name)
    return obj


def _local_file(name: str) -> Path | None:
    """The file in the current directory that a module name means there (code -> ./code.py, a.b -> ./a/b.py)."""
    base = Path.cwd().joinpath(*name.split("."))
    for cand in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _same_file(module: Any, path: Path) -> bool:
    origin = getattr(module, "__file__", None)
    return bool(origin) and Path(origin).resolve() == path.resolve()


def _import_module(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not _is_missing(e, name):
            raise  # the user's module exists but one of its own imports failed: show the real error
        local = _local_file(name)
        if local is not None and name.split(".")[0] in sys.modules:
            return _load_file(str(local), what)  # `test.nets` with the stdlib's `test` package in the way
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
