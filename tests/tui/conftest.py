"""Helpers for the dashboard tests: wait on conditions, never on bare sleeps."""

from __future__ import annotations

import time

import pytest

from danlu.engine.control.channel import Channel


@pytest.fixture
def channel() -> Channel:
    return Channel()


async def wait_for(pilot, condition, timeout: float = 5.0, what: str = "condition"):
    """Let the app run until `condition()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


async def click(pilot, selector: str, timeout: float = 10.0) -> None:
    """Click `selector` once the layout has settled, and fail if the click lands elsewhere.

    A widget that was just shown, enabled or moved (a dialog growing when its text changes) has a
    stale region until the next refresh; `pilot.click` aims at that region and can miss, more
    often on a loaded machine. Wait until the region is on screen and the same over two pauses."""
    widget = pilot.app.screen.query_one(selector)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        await pilot.pause()
        region = widget.region
        if region == last and region.area and widget.display and not widget.disabled:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {selector} to settle on screen")
        last = region
        await pilot.pause(0.02)
    assert await pilot.click(widget), f"the click meant for {selector} landed on another widget"


def drain_commands(channel: Channel) -> list:
    """Every command the UI has sent so far (tests without an engine read them here)."""
    out = []
    while (cmd := channel.poll_command()) is not None:
        out.append(cmd)
    return out
