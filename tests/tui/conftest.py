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


def drain_commands(channel: Channel) -> list:
    """Every command the UI has sent so far (tests without an engine read them here)."""
    out = []
    while (cmd := channel.poll_command()) is not None:
        out.append(cmd)
    return out
