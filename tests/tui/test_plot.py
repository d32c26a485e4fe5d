from rich.style import Style

from danlu.tui.plot import PlotSpec, render_plot
from danlu.tui.series import Series

STYLES = {r: Style(color="red") for r in ("train", "ema", "val", "axis", "clip", "mark-set_lr")}


def text(rows):
    return ["".join(seg.text for seg in row) for row in rows]


def test_empty_chart_says_it_is_waiting():
    rows = text(render_plot(PlotSpec(), 40, 10, STYLES))
    assert len(rows) == 10 and any("waiting" in r for r in rows)


def test_rows_have_the_requested_size():
    s = Series()
    s.extend(range(2000), [1 / (1 + i) for i in range(2000)])
    spec = PlotSpec(lines=[(s, "train")], points=[(1000, 0.01, "val", "●")],
                    hlines=[(0.5, "clip")], vmarks=[(500, "mark-set_lr")])
    for w, h in ((120, 40), (80, 24), (20, 4)):
        rows = text(render_plot(spec, w, h, STYLES))
        assert len(rows) == h
        assert all(len(r) == w for r in rows), (w, h)
    rows = text(render_plot(spec, 60, 12, STYLES))
    assert "●" in "".join(rows) and "1999" in rows[-1]


def test_log_scale_skips_nonpositive_values():
    s = Series()
    s.extend(range(10), [0.0, -1.0, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 1e4])
    rows = text(render_plot(PlotSpec(lines=[(s, "train")], log=True), 50, 10, STYLES))
    assert rows[0].strip().startswith("10000")


def test_constant_series_and_single_point_do_not_crash():
    s = Series()
    s.append(7, 3.0)
    rows = text(render_plot(PlotSpec(lines=[(s, "train")]), 30, 6, STYLES))
    assert len(rows) == 6
    s.append(8, 3.0)
    assert len(render_plot(PlotSpec(lines=[(s, "train")], log=True), 30, 6, STYLES)) == 6
