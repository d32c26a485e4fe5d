"""A Footer that fits the terminal: roomy when every key fits, compact when not, and past that it
leaves out the least needed keys (the command palette, always shown, lists them all).

Textual's Footer draws its keys once per bindings change and lets the ones that do not fit run
under the palette key at the right edge. This one plans its form from the width on every resize
(both ways) and redraws when the plan changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the Footer's own key widget; no public name in Textual 8

MORE = "more"  # the palette key's label when some keys are left to the palette


@dataclass(frozen=True)
class FooterPlan:
    compact: bool
    hidden: frozenset[str]  # binding ids left out (reachable through the palette)


def key_width(key: str, description: str, compact: bool) -> int:
    """Cells a FooterKey takes: its paddings and margin as Footer's CSS gives them."""
    if compact:
        return cell_len(key) + 1 + cell_len(description) + 1  # "k desc" + margin-right 1
    return 1 + cell_len(key) + 1 + cell_len(description) + 1  # " k desc "


def palette_width(key: str, description: str) -> int:
    """The palette key (always drawn compact): a border cell before it, a padding or margin cell after."""
    return 1 + cell_len(key) + 1 + cell_len(description) + 1


def plan(keys: Sequence[tuple[str, str, str]], width: int, priority: Sequence[str],
         palette: tuple[str, str] | None) -> FooterPlan:
    """The footer's form at `width` for keys (binding id, key display, description) in footer order.

    Roomy if everything fits; else compact, leaving out keys from the end of `priority` first
    (ids not in `priority` go before any that are). The first id of `priority` is never left out.
    """
    def total(shown, compact: bool, pal_label: str | None) -> int:
        pal = palette_width(palette[0], pal_label) if palette and pal_label is not None else 0
        return sum(key_width(k, d, compact) for i, k, d in keys if i in shown) + pal

    everything = {i for i, _, _ in keys}
    if total(everything, False, palette[1] if palette else None) <= width:
        return FooterPlan(False, frozenset())
    if total(everything, True, palette[1] if palette else None) <= width:
        return FooterPlan(True, frozenset())
    rank = {i: n for n, i in enumerate(priority)}
    droppable = sorted((i for i in everything if i not in priority[:1]),
                       key=lambda i: rank.get(i, len(rank)), reverse=True)
    shown = set(everything)
    for i in droppable:
        shown.discard(i)
        if total(shown, True, MORE if palette else None) <= width:
            break
    return FooterPlan(True, frozenset(everything - shown))


class KeyFooter(Footer):
    """Footer(show_command_palette=True) that plans its form from its width.

    `priority`: binding ids, most needed first; the first is always shown. At any width the
    palette key stays, so a key left out here is one ctrl+p away.
    """

    def __init__(self, priority: Iterable[str] = (), *, id: str | None = None):
        super().__init__(id=id, show_command_palette=True)
        self.priority = tuple(priority)
        self.plan = FooterPlan(False, frozenset())
        self._width = 0

    @property
    def width(self) -> int:
        return self._width or self.app.size.width

    def _keys(self) -> list[tuple[str, str, str]]:
        """(id, key display, description) of the bindings the Footer would show, in its order."""
        out, seen = [], set()
        for _node, binding, _enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            out.append((binding.id or binding.action, self.app.get_key_display(binding), binding.description))
        return out

    def _palette(self) -> tuple[str, str] | None:
        if not self.app.ENABLE_COMMAND_PALETTE:
            return None
        entry = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        if entry is None:
            return None
        return self.app.get_key_display(entry[1]), entry[1].description

    def current_plan(self, width: int | None = None) -> FooterPlan:
        return plan(self._keys(), width or self.width, self.priority, self._palette())

    def fit(self, width: int) -> None:
        """Follow a new width: switch form and redraw when the plan changes."""
        self._width = width
        if not self._bindings_ready:
            return
        new = self.current_plan(width)
        if new != self.plan:
            self.plan = new
            self.compact = new.compact
            self.refresh(recompose=True)

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        self.plan = self.current_plan()
        self.set_reactive(Footer.compact, self.plan.compact)
        self.set_class(self.plan.compact, "-compact")
        ids = {b.action: (b.id or b.action) for _n, b, _e, _t in self.screen.active_bindings.values()}
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                if widget.has_class("-command-palette"):
                    if self.plan.hidden:
                        widget.description = MORE
                elif ids.get(widget.action) in self.plan.hidden:
                    continue
            yield widget

    def shown_keys(self) -> list[str]:
        """The keys drawn now, palette included (for tests and the curious)."""
        return [k.key for k in self.query(FooterKey)]


def binding_commands(screen: Screen) -> Iterator[SystemCommand]:
    """A palette command for each of the screen's own bindings with a description ("Find (ctrl+f)"),
    so a key the footer leaves out is still a search away. App-level actions the App lists itself; those
    the screen's `palette_skips(action)` names (a dashboard's, once the run has ended) are left out."""
    for b in screen.BINDINGS:
        if not isinstance(b, Binding) or b.action.startswith("app.") or not b.description:
            continue
        if getattr(screen, "palette_skips", lambda _action: False)(b.action):  # not any more (the run has ended)
            continue
        keys = ", ".join(k.strip() for k in b.key.split(","))
        yield SystemCommand(f"{b.description} ({keys})", b.tooltip or b.description,
                            lambda a=b.action: screen.run_action(a))
