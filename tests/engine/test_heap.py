"""While a run trains, full GC passes skip the heap built before it; afterwards nothing is kept."""

from __future__ import annotations

import gc
import weakref

from danlu.engine.trainer import Trainer

from .helpers import ScriptedChannel


class _Node:
    pass


def _garbage_cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # only the cyclic collector can free this pair
    return weakref.ref(a)


class _Probe(Trainer):
    """Records, at the first optimizer step, how much is frozen and whether a full pass frees the cycle."""

    make_cycle = False
    cycle: weakref.ref | None = None
    frozen_in_run = -1
    cycle_alive_after_full_pass = None

    def setup(self):
        super().setup()
        if self.make_cycle:
            gc.disable()  # no collection between here and the freeze may take the cycle early
            self.cycle = _garbage_cycle()

    def _optimizer_step(self, loss):
        if self.frozen_in_run < 0:
            gc.enable()
            self.frozen_in_run = gc.get_freeze_count()
            if self.cycle is not None:
                gc.collect()
                self.cycle_alive_after_full_pass = self.cycle() is not None
        return super()._optimizer_step(loss)


def _run(cfg, make_cycle=False) -> _Probe:
    ch = ScriptedChannel()
    t = _Probe(cfg, ch)
    t.make_cycle = make_cycle
    ch.trainer = t
    try:
        t.run()
    finally:
        gc.enable()
    return t


def test_training_freezes_the_setup_heap_and_gives_it_back(tiny_config):
    assert gc.get_freeze_count() == 0
    t = _run(tiny_config({"train": {"max_steps": 3}}), make_cycle=True)
    assert t.final_state == "finished"
    # torch alone is ~190k tracked objects: all of them were out of the full passes' way
    assert t.frozen_in_run > 50_000, t.frozen_in_run
    assert t.cycle_alive_after_full_pass, "a full pass during the run walked the frozen heap"
    # after the run the heap is the collector's again: the old garbage cycle goes
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert t.cycle() is None


def test_a_heap_the_host_froze_stays_frozen(tiny_config):
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        t = _run(tiny_config({"train": {"max_steps": 2}}))
        assert t.final_state == "finished", t.error
        # not unfrozen by the run (a few frozen objects may have been freed by refcount)
        assert gc.get_freeze_count() > before // 2
    finally:
        gc.unfreeze()
