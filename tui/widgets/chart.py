"""A braille line chart drawn with the line API, so only changed frames are rebuilt."""

from __future__ import annotations

from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ..plot import PlotSpec, render_plot

# Roles a PlotSpec may name; each is a CSS component class `chart--<role>`.
ROLES = ("train", "ema", "val", "lr", "grad", "grad-band", "clip", "axis",
         "mark-set_lr", "mark-pause", "mark-checkpoint", "mark-hparam", "mark-alert",
         "mark-freeze")


class Chart(Widget):
    """Draws one PlotSpec. Set it with `plot(spec, key)`; a changed key redraws."""

    COMPONENT_CLASSES = {f"chart--{r}" for r in ROLES}

    DEFAULT_CSS = """
    Chart { height: 1fr; min-height: 3; }
    Chart > .chart--train { color: $primary; }
    Chart > .chart--ema { color: $warning; text-style: bold; }
    Chart > .chart--val { color: $error; text-style: bold; }
    Chart > .chart--lr { color: $secondary; }
    Chart > .chart--grad { color: $accent; text-style: bold; }
    Chart > .chart--grad-band { color: $accent 45%; }
    Chart > .chart--clip { color: $error; }
    Chart > .chart--axis { color: $foreground-muted; }
    Chart > .chart--mark-set_lr { color: $secondary; }
    Chart > .chart--mark-pause { color: $warning; }
    Chart > .chart--mark-checkpoint { color: $success; }
    Chart > .chart--mark-hparam { color: $accent; }
    Chart > .chart--mark-alert { color: $error; }
    Chart > .chart--mark-freeze { color: $primary-lighten-2; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.spec = PlotSpec()
        self._key: object = None
        self._lines: list[Strip] = []
        self._lines_key: object = None
        self._role_styles: tuple[object, dict[str, Style]] = (None, {})

    def plot(self, spec: PlotSpec, key: object) -> None:
        """Show `spec`; `key` identifies its data so an unchanged chart is not redrawn."""
        if key != self._key:
            self.spec, self._key = spec, key
            self.refresh()

    def _styles(self) -> dict[str, Style]:
        """One rich Style per role, looked up once per theme (13 lookups cost ~2 ms a frame)."""
        theme = self.app.theme
        if self._role_styles[0] != theme:
            self._role_styles = (theme, {r: self.get_component_rich_style(f"chart--{r}") for r in ROLES})
        return self._role_styles[1]

    def render_line(self, y: int) -> Strip:
        w, h = self.size
        key = (self._key, w, h, self.app.theme)
        if key != self._lines_key:
            base = self.rich_style  # a property that walks the CSS (~0.1 ms): once a frame, not once a row
            rows = render_plot(self.spec, w, h, self._styles(), base)
            self._lines = [Strip(r).adjust_cell_length(w, base) for r in rows]
            self._lines_key = key
        if 0 <= y < len(self._lines):
            return self._lines[y]
        return Strip.blank(w, self.rich_style)
