"""The braille canvas: spans drawn a cell at a time set exactly the dots a dot-by-dot loop sets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.style import Style

from danlu.tui.braille import BrailleCanvas

STYLES = [Style(color="red"), Style(color="blue"), Style(color="green")]


def _reference_vspan(canvas: BrailleCanvas, x, y0, y1, style, every=1):
    """The plain definition: one dot per row, via dot() (which clips to the canvas)."""
    if y0 > y1:
        y0, y1 = y1, y0
    if not 0 <= x < canvas.dots_w:
        return
    for y in range(max(y0, 0), min(y1, canvas.dots_h - 1) + 1, every):
        canvas.dot(x, y, style)


spans = st.lists(st.tuples(st.integers(-3, 25), st.integers(-6, 45), st.integers(-6, 45),
                           st.sampled_from(range(len(STYLES))), st.sampled_from([1, 2])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 10), h=st.integers(1, 9), ops=spans)
def test_vspan_sets_the_same_dots_and_styles_as_dot_by_dot(w, h, ops):
    fast, slow = BrailleCanvas(w, h), BrailleCanvas(w, h)
    for x, y0, y1, s, every in ops:
        fast.vspan(x, y0, y1, STYLES[s], every)
        _reference_vspan(slow, x, y0, y1, STYLES[s], every)
    assert fast.bits == slow.bits
    assert fast.style == slow.style
    assert fast.rows() == slow.rows()


def test_a_full_height_span_is_a_solid_braille_column():
    c = BrailleCanvas(2, 3)
    c.vspan(0, 0, 11, STYLES[0])  # left dot column of the first cell column, all 12 dot rows
    c.vspan(3, 5, 6, STYLES[1])   # right dot column of the second cell column, rows 5-6
    text = ["".join(seg.text for seg in row) for row in c.rows()]
    assert text == ["⡇ ", "⡇⠰", "⡇ "]
