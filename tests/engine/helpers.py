"""Drive a Trainer from tests: scripted commands at chosen steps, collected events."""

from __future__ import annotations

from danlu.engine.control.channel import Channel
from danlu.engine.loop.trainer import Trainer


class ScriptedChannel(Channel):
    """A channel that hands out commands when the trainer reaches given step counts."""

    def __init__(self, script: dict[int, list] | None = None, resume_when_paused: bool = False):
        super().__init__(max_pending_metrics=10**9)
        self.resume_when_paused = resume_when_paused  # a person who always presses space again
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.trainer: Trainer | None = None
        self.seen: list = []

    def poll_command(self, timeout=None):
        step = self.trainer.step if self.trainer is not None else 0
        if self.resume_when_paused and self.trainer is not None and self.trainer.paused:
            from danlu.engine.control.events import resume
            return resume()
        if self.script.get(step):
            return self.script[step].pop(0)
        return super().poll_command(timeout)

    def emit(self, event) -> None:
        self.seen.append(event)


def run_trainer(cfg, script=None, resume=None, resume_when_paused=False) -> tuple[Trainer, ScriptedChannel]:
    ch = ScriptedChannel(script, resume_when_paused)
    t = Trainer(cfg, ch, resume=resume)
    ch.trainer = t
    t.run()
    return t, ch


def of_type(events, cls):
    return [e for e in events if isinstance(e, cls)]
