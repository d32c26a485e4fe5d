"""A braille-dot canvas: each terminal cell holds 2x4 dots, so a 120x40 chart is 240x160 dots.

Renders to rich Segments (one list per row) so a widget can hand Strips to
Textual without going through a layout pass. Torch- and Textual-free.
"""

from __future__ import annotations

from itertools import groupby

from rich.segment import Segment
from rich.style import Style

# Dot bit for (row within cell 0-3, column within cell 0-1), per the Unicode braille block.
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BLANK = 0x2800
# The character for each 8-dot pattern; no dots is a space.
_GLYPHS = tuple(chr(_BLANK + b) if b else " " for b in range(256))
_MISSING = object()
# _SPAN[col][r0][r1]: the bits of rows r0..r1 (inclusive) of one dot column of a cell.
_SPAN = tuple(tuple(tuple(sum(_BITS[r][c] for r in range(r0, r1 + 1)) for r1 in range(4)) for r0 in range(4))
              for c in range(2))


class BrailleCanvas:
    """Dots in braille cells; each cell takes the style of the last thing drawn in it."""

    def __init__(self, width: int, height: int):
        self.width, self.height = max(width, 0), max(height, 0)
        self.dots_w, self.dots_h = self.width * 2, self.height * 4
        n = self.width * self.height
        self.bits = [0] * n
        self.style: list[Style | None] = [None] * n
        self.chars: dict[int, tuple[str, Style]] = {}  # cell -> glyph drawn over the dots

    def dot(self, x: int, y: int, style: Style) -> None:
        """Set the dot at (x, y); y = 0 is the top row."""
        if 0 <= x < self.dots_w and 0 <= y < self.dots_h:
            cell = (y >> 2) * self.width + (x >> 1)
            self.bits[cell] |= _BITS[y & 3][x & 1]
            self.style[cell] = style

    def vspan(self, x: int, y0: int, y1: int, style: Style, every: int = 1) -> None:
        """Dots from y0 to y1 inclusive in column x (either order), every `every` rows."""
        if not 0 <= x < self.dots_w:
            return
        if y0 > y1:
            y0, y1 = y1, y0
        y0, y1 = max(y0, 0), min(y1, self.dots_h - 1)
        if y0 > y1:
            return
        col, bit_col = x >> 1, x & 1
        width, bits, styles = self.width, self.bits, self.style
        if every != 1:
            for y in range(y0, y1 + 1, every):
                cell = (y >> 2) * width + col
                bits[cell] |= _BITS[y & 3][bit_col]
                styles[cell] = style
            return
        # A cell at a time, not a dot at a time: a noisy band spans most of the plot's height
        # in every column, and this loop was the largest cost of a grad-norm chart frame.
        masks = _SPAN[bit_col]
        first, last = (y0 >> 2) * width + col, (y1 >> 2) * width + col
        if first == last:
            bits[first] |= masks[y0 & 3][y1 & 3]
        else:
            bits[first] |= masks[y0 & 3][3]
            full = masks[0][3]
            for cell in range(first + width, last, width):
                bits[cell] |= full
            bits[last] |= masks[0][y1 & 3]
        styles[first:last + 1:width] = [style] * ((last - first) // width + 1)

    def hline(self, y: int, style: Style, every: int = 2) -> None:
        """A dotted horizontal line at dot row y."""
        for x in range(0, self.dots_w, every):
            self.dot(x, y, style)

    def overlay(self, other: "BrailleCanvas") -> None:
        """Cells where `other` has dots take its dots and style only: a line stays legible over a band."""
        for c, b in enumerate(other.bits):
            if b:
                self.bits[c], self.style[c] = b, other.style[c]

    def glyph(self, x: int, y: int, char: str, style: Style) -> None:
        """Put one character over the cell holding dot (x, y)."""
        if 0 <= x < self.dots_w and 0 <= y < self.dots_h:
            self.chars[(y >> 2) * self.width + (x >> 1)] = (char, style)

    def rows(self, base: Style | None = None) -> list[list[Segment]]:
        """One list of Segments per cell row, runs of equal style joined."""
        w, bits, styles = self.width, self.bits, self.style
        glyph = _GLYPHS.__getitem__
        over: dict[int, list[tuple[int, str, Style]]] = {}
        for c, (char, st) in self.chars.items():
            over.setdefault(c // w, []).append((c % w, char, st))
        joined: dict[int, Style | None] = {}  # id(style) -> base + style, once per frame
        out = []
        # A row at a time with C-level map/zip/groupby, not a Python step per cell: this was
        # the largest cost left in a chart frame (~3 ms of a 120x40 one), on the UI thread.
        for r in range(self.height):
            a = r * w
            row_bits = bits[a:a + w]
            text = list(map(glyph, row_bits))
            row_styles = [st if b else None for b, st in zip(row_bits, styles[a:a + w])]
            for c, char, st in over.get(r, ()):
                text[c], row_styles[c] = char, st
            segs: list[Segment] = []
            i = 0
            for key, run in groupby(map(id, row_styles)):
                n = len(tuple(run))
                st = joined.get(key, _MISSING)
                if st is _MISSING:
                    st = joined[key] = _join(base, row_styles[i])
                segs.append(Segment("".join(text[i:i + n]), st))
                i += n
            out.append(segs)
        return out


def _join(base: Style | None, st: Style | None) -> Style | None:
    if base is None:
        return st
    return base if st is None else base + st
