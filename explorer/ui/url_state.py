"""A link for every view: each lab's controls live in the address bar under their settings' own names
(``?n_head=8&mask=sliding_window&window=3``), so a teacher can send a view and a student open exactly it.

Why not Streamlit's ``bind="query-params"``: it writes a choice as the label the student sees, so a link made in
Chinese (``mask=滑动窗口``) would not open in English, and it silently drops a bad value where a student should be
told. Here the URL carries the settings' values, the same in every language, and a bad one gets a sentence.

The rules, per lab:
- a link, a reload, Back or Forward (an address this session did not write): the address wins;
- coming back through the menu (an address without this lab's settings): the lab's last view in this session;
- a control moved: the widget wins, and ``publish`` writes the address (a value at its default is left out).
Widget keys are ``<lab>.<name>``: two labs both have ``n_head``, with different ranges, and a page's first run
still sees the widgets of the page before it.
"""
from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import streamlit as st

from ..i18n import Msg
from .common import report_warning
from .i18n import tr

VIEWS_KEY = "_views"  # session_state: lab -> {name: text} as last written to the address
PENDING_KEY = "_views_pending"  # session_state: lab -> (its control names, its address texts) published this run
LINKED_KEY = "_views_linked"  # session_state: lab -> names whose value came from the address in this run
IGNORED_KEY = "_views_ignored"  # session_state: names no view reads from the address now (explorer.ui.tabbed_lab)


def _show(value: Any) -> str:
    """A value as the address writes it: a slider's 0.1 + 0.2 is written 0.3, not 0.30000000000000004."""
    if isinstance(value, float):
        return repr(round(value, 9))
    return str(value)


@dataclass(frozen=True)
class Control:
    """One setting kept in the address: ``parse`` turns the address's text into a value or raises ValueError."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = _show


def whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if not low <= value <= high:
            raise ValueError(text)
        return value
    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text.strip())
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(text)
        return value
    return parse


def one_of(choices: Iterable[Any]) -> Callable[[str], Any]:
    by_text = {str(c): c for c in choices}

    def parse(text: str) -> Any:
        if text not in by_text:
            raise ValueError(text)
        return by_text[text]
    return parse


def flag(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if text.strip().lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(text)


def show_flag(value: bool) -> str:
    return "1" if value else "0"


def text(max_chars: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > max_chars:
            raise ValueError(value[:40])
        return value
    return parse


class LabView:
    """The controls of one lab (or of the whole app: ``lang``, ``present``) and their place in the address."""

    def __init__(self, lab: str, controls: Iterable[Control]):
        self.lab = lab
        self.controls = {c.name: c for c in controls}

    def key(self, name: str) -> str:
        """The widget key of control ``name``: give it to the widget, and give the widget no value of its own."""
        return f"{self.lab}.{name}"

    def value(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def address(self) -> dict[str, str]:
        ignored = st.session_state.get(IGNORED_KEY, ())
        return {name: st.query_params[name] for name in self.controls
                if name in st.query_params and name not in ignored}

    def from_address(self) -> bool:
        """Whether this run takes the lab's view from the address: a link, a reload, Back or Forward. Not when the
        address is what this session wrote, or empty (back through the menu), or when the student has just moved
        one of the controls: a rerun the browser sent before the last run's new address reached it carries the
        address before that (quick key presses on a slider did), and the widgets are then the truth."""
        saved = st.session_state.get(VIEWS_KEY, {}).get(self.lab)
        if saved is None:
            return True
        address = self.address()
        if not address or address == saved:
            return False
        now = self.texts()
        return all(now.get(name) == saved.get(name) for name in self.controls if self.key(name) in st.session_state)

    def open(self) -> list[Msg]:
        """Before the lab's widgets: put each control's value in its widget's state, from the address or the lab's
        last view, and return a sentence for every value of the address that could not be used."""
        views = st.session_state.setdefault(VIEWS_KEY, {})
        address = self.address()
        from_address = self.from_address()
        source = address if from_address else views.get(self.lab) or {}
        # what the link set in this run, so that keep_valid can name a pair of values the link made impossible
        st.session_state.setdefault(LINKED_KEY, {})[self.lab] = set(address) if from_address else set()
        problems = []
        for name, control in self.controls.items():
            key = self.key(name)
            if not from_address and key in st.session_state:
                continue
            value = control.default
            if name in source:
                try:
                    value = control.parse(source[name])
                except (ValueError, TypeError):
                    default = Msg("url.browser_default") if control.default is None else control.show(control.default)
                    problems.append(Msg("url.bad_value", name=name, value=source[name][:60], default=default))
            st.session_state[key] = value
        return problems

    def keep_valid(self, name: str, valid: Callable[[Any], bool], fallback: Any,
                   why: Callable[[str, str], Msg] | None = None) -> None:
        """For a control whose choices depend on another (n_kv_head on n_head): before its widget, replace a value
        that is no longer possible, which a widget would otherwise refuse with an exception. A value the link set in
        this run is named in a sentence: ``why(value, shown)`` when the lab has a better one than "cannot be used"."""
        key = self.key(name)
        if key not in st.session_state or not valid(st.session_state[key]):
            if key in st.session_state and name in st.session_state.get(LINKED_KEY, {}).get(self.lab, ()):
                control = self.controls[name]
                value = control.show(st.session_state[key])[:60]
                shown = control.show(fallback) if fallback is not None else "—"
                show_problems([why(value, shown) if why else Msg("url.bad_value", name=name, value=value,
                                                                   default=shown)])
            st.session_state[key] = fallback

    def texts(self) -> dict[str, str]:
        """The address's text of every control not at its default."""
        out = {}
        for name, control in self.controls.items():
            value = st.session_state.get(self.key(name), control.default)
            # compared as written: a float a step's rounding away from its default is the default
            if value is not None and (control.default is None
                                      or control.show(value) != control.show(control.default)):
                out[name] = control.show(value)
        return out

    def publish(self, *, write: bool = True) -> None:
        """After the lab's widgets: write the view into the address and remember it for the way back.
        ``write=False`` only records it, for ``write_address`` to write with the page's view (the app's own
        controls, published before the page)."""
        written = self.texts()
        st.session_state.setdefault(VIEWS_KEY, {})[self.lab] = written
        st.session_state.setdefault(PENDING_KEY, {})[self.lab] = (frozenset(self.controls), written)
        if write:
            write_address()

    def reset(self) -> None:
        """Back to the defaults: for a button's on_click (it runs before the rerun that draws the defaults)."""
        for name, control in self.controls.items():
            st.session_state[self.key(name)] = control.default
        kept = {name: st.query_params[name] for name in st.query_params if name not in self.controls}
        if kept != {name: st.query_params[name] for name in st.query_params}:
            st.query_params.from_dict(kept)
        st.session_state.setdefault(VIEWS_KEY, {})[self.lab] = {}


def start_run() -> None:
    """At the top of every run of the app: nothing of this run is published yet."""
    st.session_state[PENDING_KEY] = {}


def write_address() -> None:
    """Write every view published in this run into the address in one go, if it changed. Streamlit adds a browser
    history entry for each write (outside a Back/Forward), so one write per run keeps Back one view at a time
    rather than one setting at a time (tests/browser/test_classroom_browser.py)."""
    pending = st.session_state.get(PENDING_KEY, {})
    current = {name: st.query_params[name] for name in st.query_params}
    owned = frozenset().union(*(names for names, _ in pending.values()))
    wanted = {name: value for name, value in current.items() if name not in owned}
    for _, texts in pending.values():
        wanted.update(texts)
    if wanted != current:
        st.query_params.from_dict(wanted)


def view_link() -> str:
    """The address of what this session shows now, to paste anywhere: the page and every setting in it."""
    query = urllib.parse.urlencode({name: st.query_params[name] for name in st.query_params})
    base = st.context.url or ""
    return f"{base}?{query}" if query else base


def show_problems(problems: Iterable[Msg]) -> None:
    """Each sentence about a link's value, escaped: it quotes what the link carried, which anyone can write."""
    for problem in problems:
        report_warning(problem)


def link_and_reset(view: LabView) -> None:
    """The "copy link to this view" and "reset this lab" pair, in the sidebar."""
    link, reset = st.columns(2)
    with link.popover(tr("common.copy_link"), icon=":material/link:", width="stretch"):
        st.caption(tr("common.copy_link_help"))
        st.code(view_link(), language=None, wrap_lines=True)
    reset.button(tr("common.reset_lab"), icon=":material/restart_alt:", on_click=view.reset, key=view.key("_reset"),
                 width="stretch")
