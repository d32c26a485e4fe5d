import math
import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from danlu.tui.series import Series


def test_recent_window_is_exact():
    s = Series(recent=100, buckets=16)
    for i in range(50):
        s.append(i, float(i))
    cols = s.columns(0, 49, 50)
    assert [c[2] for c in cols] == [float(i) for i in range(50)]


def test_buckets_stay_bounded_and_keep_extremes():
    s = Series(recent=64, buckets=32)
    n = 100_000
    for i in range(n):
        s.append(i, math.sin(i / 1000))
    s.append(n, 50.0)  # a spike at the very end
    assert len(s.buckets) <= 32
    assert len(s.recent) == 64
    assert s.width >= n // 32
    lo = min(b.lo for b in s.buckets)
    hi = max(b.hi for b in s.buckets)
    assert lo < -0.99 and hi == 50.0
    assert s.count == n + 1


def test_a_spike_survives_decimation():
    s = Series(recent=16, buckets=64)
    for i in range(10_000):
        s.append(i, 100.0 if i == 4321 else 1.0)
    cols = s.columns(0, 9_999, 40)
    assert max(c[1] for c in cols if c) == 100.0
    assert min(c[0] for c in cols if c) == 1.0


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 30_000), where=st.floats(0, 1), start=st.integers(0, 5_000), up=st.booleans(),
       recent=st.integers(1, 200), buckets=st.integers(2, 64), cols=st.integers(1, 240),
       batch=st.integers(1, 100))
def test_every_spike_stays_on_the_chart(n, where, start, up, recent, buckets, cols, batch):
    """Wherever one spike falls (recent window, a bucket, merged by coarsening, a batch edge), the chart
    over the whole run shows it, within a bucket of its step."""
    spike_at = start + min(n - 1, int(where * n))
    spike = 1e3 if up else -1e3
    s = Series(recent=recent, buckets=buckets)
    steps = list(range(start, start + n))
    values = [spike if step == spike_at else math.sin(step / 50) for step in steps]
    for i in range(0, n, batch):  # as the dashboard folds Metrics batches
        s.extend(steps[i:i + batch], values[i:i + batch])
    x0, x1 = s.first_step, max(s.last_step, s.first_step + 1)  # the chart's range (plot.x_range)
    columns = s.columns(x0, x1, cols)
    hits = [i for i, c in enumerate(columns) if c is not None and spike in (c[0], c[1])]
    assert hits, (spike_at, s.width)
    per_column = (x1 - x0) / max(cols - 1, 1)
    drawn_at = x0 + hits[0] * per_column
    assert abs(drawn_at - spike_at) <= s.width + per_column, (drawn_at, spike_at, s.width)


def test_columns_use_recent_points_when_they_cover_the_range():
    s = Series(recent=100, buckets=8)
    for i in range(1000):
        s.append(i, float(i))
    cols = s.columns(950, 999, 50)
    assert cols[0] == (950.0, 950.0, 950.0)
    assert cols[-1] == (999.0, 999.0, 999.0)


def test_nonfinite_values_are_counted_not_stored():
    s = Series()
    s.extend([1, 2, 3, 4], [1.0, float("nan"), float("inf"), 2.0])
    assert s.count == 2 and s.skipped == 2 and s.last == 2.0
    assert all(c is None or math.isfinite(c[0]) for c in s.columns(1, 4, 4))


def test_resumed_run_starts_at_its_step():
    s = Series()
    s.extend(range(5000, 5010), [1.0] * 10)
    assert s.first_step == 5000 and s.last_step == 5009
    assert s.columns(5000, 5009, 10)[0] == (1.0, 1.0, 1.0)


def test_draw_cost_does_not_grow_with_run_length():
    """columns() over 10^7 steps costs about what it costs over 10^3."""
    def build(n):
        s = Series()
        step = max(n // 200_000, 1)  # feed 10^7 steps in strides to keep the test fast
        for i in range(0, n, step):
            s.append(i, 1.0 / (1 + i))
        return s

    def cost(s):
        t = time.perf_counter()
        for _ in range(20):
            s.columns(s.first_step, s.last_step, 240)
        return time.perf_counter() - t

    small, big = build(1_000), build(10_000_000)
    assert len(big.buckets) <= big.max_buckets and len(big.recent) <= big.recent.maxlen
    assert cost(big) < 5 * cost(small) + 0.05


def _snapshot(s: Series):
    return (list(s.recent), [(b.index, b.lo, b.hi, b.last, b.last_step) for b in s.buckets],
            s.width, s.count, s.skipped, s.first_step, s.last_step, s.last)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=60),
       st.integers(0, 10_000))
def test_batch_extend_equals_appending_point_by_point(seed, batches, start):
    """The dashboard folds whole Metrics batches with extend(): it must draw exactly what append() would."""
    rnd = random.Random(seed)
    one, many = Series(recent=50, buckets=8), Series(recent=50, buckets=8)
    step = start
    for size, with_nan in batches:
        steps = list(range(step, step + size))
        values = [rnd.uniform(-5, 5) for _ in steps]
        if with_nan:
            values[rnd.randrange(size)] = float("nan")
        step += size
        for s, v in zip(steps, values):
            one.append(s, v)
        many.extend(steps, values)
        assert _snapshot(many) == _snapshot(one)


def _reference_columns(s: Series, x0, x1, n):
    """The plain definition: a point (or bucket) at a time into its column."""
    out = [None] * n
    scale = (n - 1) / max(x1 - x0, 1e-9) if n > 1 else 0.0
    if s.recent and s.recent[0][0] <= x0:
        points = [(step, v, v, v) for step, v in s.recent]
    else:
        points = [(b.last_step, b.lo, b.hi, b.last) for b in s.buckets]
    for step, lo, hi, last in points:
        if x0 <= step <= x1:
            i = int((step - x0) * scale + 0.5)
            c = out[i]
            out[i] = (lo, hi, last) if c is None else (min(c[0], lo), max(c[1], hi), last)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1e6, 1e6)), min_size=1, max_size=400),
       st.floats(-20, 900), st.floats(0, 900), st.integers(1, 250), st.booleans())
def test_columns_match_the_point_by_point_definition(points, x0, width, n, shuffled):
    """Chart columns per slice equal the per-point fold, over the recent window and over buckets."""
    s = Series(recent=64, buckets=16)
    step, pairs = 0, []
    for gap, v in points:
        step += gap
        pairs.append((step, v))
    if shuffled:  # steps that go back: the slow path must still be right
        random.Random(len(points)).shuffle(pairs)
    for step_, v in pairs:
        s.append(step_, v)
    assert s.ordered == (not shuffled or [p[0] for p in pairs] == sorted(p[0] for p in pairs))
    for lo, hi in ((x0, x0 + width), (s.first_step, s.last_step), (s.recent[0][0], s.last_step)):
        assert s.columns(lo, hi, n) == _reference_columns(s, lo, hi, n)
