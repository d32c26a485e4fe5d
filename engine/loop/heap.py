"""Keep Python's cyclic garbage collector off the long-lived heap while a run trains.

torch, a model, a dataset and the dashboard leave hundreds of thousands of container
objects that the collector tracks. Every full (generation 2) collection walks all of them
while holding the GIL, a stall of the training thread wherever the collection was
triggered, and a live dashboard promotes enough objects to trigger one regularly.

`gc.freeze()` moves everything allocated so far into a permanent generation the
collector skips, so full passes become cheap. Reference counting still frees frozen
objects as usual, and `gc.unfreeze()` hands the heap back when the run ends.

One full collection runs first, once, before the first step: garbage cycles left by
setup, or by an earlier run in the same process (a restart with a changed config, a
benchmark's rounds), would otherwise be frozen for the whole run, their memory kept (an
old model's tensors among them) and the new run's steps measurably slower.
Measured in docs/performance.md, "Garbage-collection pauses" and "What we learned".
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap for the body, then unfreeze it; leave alone a heap someone else froze."""
    if gc.get_freeze_count():
        yield  # the host process manages freezing itself (e.g. before a fork): not ours to undo
        return
    gc.collect()  # garbage cycles go now, not after the run (once per run: a full pass)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
