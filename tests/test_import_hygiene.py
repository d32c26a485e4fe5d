"""The boundaries the design promises, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str, cwd=None) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_engine_never_imports_textual():
    # every module of the engine, so a new one cannot slip a front end in
    out = _run("""
        import importlib, pkgutil, sys
        import danlu.engine as e
        for m in pkgutil.walk_packages(e.__path__, 'danlu.engine.'):
            importlib.import_module(m.name)
        print(sorted(m for m in sys.modules if m.startswith(('textual', 'danlu.tui'))))
    """)
    assert out.strip() == "[]"


def test_config_and_events_import_no_torch():
    out = _run("""
        import sys
        import danlu.engine.config.schema, danlu.engine.control.events, danlu.engine.control.channel, danlu.engine.config.knobs
        print('torch' in sys.modules)
    """)
    assert out.strip() == "False"


def test_help_is_fast_and_loads_no_torch():
    out = _run("""
        import sys, io, contextlib
        from danlu.tui.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(['--help'])
            except SystemExit:
                pass
        print('torch' in sys.modules, 'textual' in sys.modules)
    """)
    assert out.strip() == "False False"


def test_users_engine_py_does_not_shadow_ours(tmp_path):
    (tmp_path / "engine.py").write_text("raise RuntimeError('user engine imported')\n")
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("raise RuntimeError('user engine pkg imported')\n")
    out = _run("""
        import sys
        sys.path.insert(0, '.')
        import danlu.engine.config.schema as c
        print(c.__file__)
    """, cwd=tmp_path)
    assert "danlu" in out or "engine/config/schema.py" in out
    assert str(tmp_path) not in out
