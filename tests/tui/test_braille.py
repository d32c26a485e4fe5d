"""The braille canvas: spans drawn a cell at a time set exactly the dots a dot-by-dot loop sets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.segment import Segment
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


def _reference_rows(canvas: BrailleCanvas, base=None):
    """The plain definition: a cell at a time, a new Segment wherever the style changes."""
    out = []
    for r in range(canvas.height):
        segs, run, run_style = [], [], None
        for c in range(r * canvas.width, (r + 1) * canvas.width):
            if c in canvas.chars:
                char, st = canvas.chars[c]
            elif canvas.bits[c]:
                char, st = chr(0x2800 + canvas.bits[c]), canvas.style[c]
            else:
                char, st = " ", None
            if st is not run_style and run:
                segs.append(Segment("".join(run), st_join(base, run_style)))
                run = []
            run_style = st
            run.append(char)
        if run:
            segs.append(Segment("".join(run), st_join(base, run_style)))
        out.append(segs)
    return out


def st_join(base, st):
    return st if base is None else (base if st is None else base + st)


dots = st.lists(st.tuples(st.integers(-2, 22), st.integers(-2, 40), st.sampled_from(range(len(STYLES)))),
                max_size=60)
glyphs = st.lists(st.tuples(st.integers(0, 21), st.integers(0, 39), st.sampled_from("●▲x"),
                            st.sampled_from(range(len(STYLES)))), max_size=5)


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 11), h=st.integers(1, 10), ops=dots, marks=glyphs, spans_=spans,
       base=st.sampled_from([None, Style(bgcolor="black"), Style(bold=True)]))
def test_rows_match_the_cell_by_cell_definition(w, h, ops, marks, spans_, base):
    canvas = BrailleCanvas(w, h)
    for x, y0, y1, s, every in spans_:
        canvas.vspan(x, y0, y1, STYLES[s], every)
    for x, y, s in ops:
        canvas.dot(x, y, STYLES[s])
    for x, y, char, s in marks:
        canvas.glyph(x, y, char, STYLES[s])
    assert canvas.rows(base) == _reference_rows(canvas, base)
    assert all(sum(len(seg.text) for seg in row) == w for row in canvas.rows(base))
