"""Write docs/screenshot.svg: the dashboard mid-run, from the deterministic fake stream.

Run: `python -m tests.tui.make_screenshot` from the repository root.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from danlu.engine.control.channel import Channel
from danlu.tui.app import create_app

from .conftest import wait_for
from .fake_engine import emit_run

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.svg"


async def main(size=(120, 40)) -> None:
    ch = Channel()
    emit_run(ch, steps=1200)
    app = create_app(ch, title="danlu · demo")
    app.notify = lambda *a, **k: None  # toasts would cover the charts
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: ch.pending() == 0
                       and app.pump.state.version == app.screen._shown_version, what="drawn")
        await pilot.pause()
        app.save_screenshot(filename=OUT.name, path=str(OUT.parent))
    print(OUT)


if __name__ == "__main__":
    asyncio.run(main())
