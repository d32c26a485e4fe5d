"""What a profile found: the ops with the most self time, the data-loading share, the trace's path."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from danlu.engine.control import events as ev

from ..describe import short_path

NAME_W = 34  # op names are long (aten::_foreach_addcdiv_, DataLoader frames): cut with an ellipsis


def micros(us: float | None) -> str:
    if us is None:
        return "–"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.0f} µs"


def ops_table(e: ev.ProfileDone, rows: int = 12) -> Table:
    cuda = "cuda" in e.activities
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("op", no_wrap=True, overflow="ellipsis", max_width=NAME_W)
    table.add_column("self CPU", justify="right")
    if cuda:
        table.add_column("self CUDA", justify="right")
    table.add_column("calls", justify="right")
    table.add_column("%", justify="right")
    for op in e.top_ops[:rows]:
        cells = [op["name"], micros(op["self_cpu_us"])]
        if cuda:
            cells.append(micros(op.get("self_cuda_us")))
        table.add_row(*cells, str(op["calls"]), f"{op['pct']:.1f}")
    return table


def summary(e: ev.ProfileDone) -> Text:
    what = "CPU and CUDA" if "cuda" in e.activities else "CPU"
    cut = f" ({e.detail})" if e.detail else ""
    text = Text.from_markup(f"steps [b]{e.first_step}-{e.step}[/b]{cut}, {what}; "
                            f"{micros(1e6 * e.step_time)} a step\n")
    text.append_text(Text.from_markup(f"waiting for data: [b]{100 * e.data_share:.0f}%[/b] of step time"))
    if e.data_share >= 0.3:
        text.append(" (the loader is the bottleneck: more data.num_workers, or cheaper transforms)")
    return text


class ProfileResult(ModalScreen[None]):
    """Shows one ProfileDone; any of escape, enter, q closes it."""

    BINDINGS = [Binding("escape,q", "close", "Close", id="profile-close")]
    AUTO_FOCUS = "#profile-close"

    def __init__(self, event: ev.ProfileDone, run_dir: str | None = None):
        super().__init__(id="profile-result")
        self.event, self.run_dir = event, run_dir

    def compose(self) -> ComposeResult:
        e = self.event
        with Vertical(classes="dialog") as box:
            box.border_title = "Profile"
            yield Static(summary(e), id="profile-summary")
            with VerticalScroll(id="profile-ops"):
                yield Static(ops_table(e) if e.top_ops else "no ops recorded", id="profile-table")
            yield Static(f"trace: [b]{short_path(e.trace, self.run_dir)}[/b]\nopen it in ui.perfetto.dev or "
                         "chrome://tracing", id="profile-trace", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Close", variant="primary", id="profile-close", compact=True)

    @on(Button.Pressed, "#profile-close")
    def action_close(self) -> None:
        self.dismiss(None)
