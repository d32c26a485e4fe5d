"""Keep Python's cyclic garbage collector off the long-lived heap while a run trains.

`import torch` alone leaves about 190k container objects that the collector tracks; with
a model, a dataset and the dashboard it is 350-400k. Every full (generation 2) collection
walks all of them while holding the GIL: 130-240 ms measured on the 2-core CPU box, a
stall of the training thread each time, wherever the collection was triggered. During a
run the dashboard's frames and the metric batches promote enough objects for one every
~10 s, so the full passes alone were ~2% of the wall clock of a live run
(docs/performance.md, "Full collections").

`gc.freeze()` moves everything allocated so far into a permanent generation the
collector skips; the same full pass then takes ~10 ms. Reference counting still frees
frozen objects as usual, and `gc.unfreeze()` hands the heap back when the run ends.

One full collection runs first, once, before the first step: garbage cycles left by
setup, or by an earlier run in the same process (a restart with a changed config, a
benchmark's rounds), would otherwise be frozen for the whole run, their memory kept (an
old model's tensors among them). With them frozen, whole dashboard runs that followed
other runs in one process read 7-12% fewer steps per CPU-second than headless ones;
collecting first, 1.00-1.07 (docs/performance.md, fifth session).
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
    gc.collect()  # garbage cycles go now, not after the run (once: ~0.1-0.3 s with torch loaded)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
