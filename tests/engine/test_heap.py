"""While a run trains, full GC passes skip the heap built before it; its garbage goes first; nothing is kept."""

from __future__ import annotations

import gc
import weakref

from danlu.engine.loop.trainer import Trainer

from .helpers import ScriptedChannel


class _Node:
    pass


def _garbage_cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # only the cyclic collector can free this pair
    return weakref.ref(a)


class _Probe(Trainer):
    """Records, at the first optimizer step, how much is frozen and whether setup's garbage cycle is gone."""

    make_cycle = False
    cycle: weakref.ref | None = None
    frozen_in_run = -1
    cycle_alive_in_run = None

    def setup(self):
        super().setup()
        if self.make_cycle:
            gc.disable()  # no automatic collection may take the cycle: only the run's own one
            self.cycle = _garbage_cycle()

    def _optimizer_step(self, loss):
        if self.frozen_in_run < 0:
            gc.enable()
            self.frozen_in_run = gc.get_freeze_count()
            if self.cycle is not None:
                self.cycle_alive_in_run = self.cycle() is not None
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
    # setup's garbage was collected before the freeze, not kept frozen for the whole run
    assert t.cycle_alive_in_run is False
    # after the run the heap is the collector's again
    assert gc.get_freeze_count() == 0


def test_frozen_objects_are_out_of_a_full_pass():
    """What frozen_heap freezes, a full pass does not walk: a cycle frozen with it survives the pass."""
    from danlu.engine.loop.heap import frozen_heap
    gc.disable()
    try:
        with frozen_heap():
            gc.unfreeze()  # re-freeze with a garbage cycle among the frozen objects
            cycle = _garbage_cycle()
            gc.freeze()
            gc.collect()
            assert cycle() is not None, "a full pass walked the frozen heap"
        gc.collect()
        assert cycle() is None  # unfrozen after the body: the collector takes it
    finally:
        gc.enable()


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
