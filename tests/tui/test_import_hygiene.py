"""The dashboard loads without torch: UI tests stay fast and the UI starts before the engine."""

import subprocess
import sys

CODE = """
import sys, pkgutil, importlib
import danlu.tui
for m in pkgutil.walk_packages(danlu.tui.__path__, "danlu.tui."):
    importlib.import_module(m.name)
bad = sorted(k for k in sys.modules if k == "torch" or k.startswith("torch.")
             or k == "danlu.engine.loop.trainer")
print(bad)
sys.exit(1 if bad else 0)
"""


def test_tui_imports_no_torch():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
