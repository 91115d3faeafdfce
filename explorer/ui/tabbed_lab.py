"""A lab shown one tab at a time (the inference and post-training labs): the row of tab names, its value in the link
as ``?tab=``, and the open tab's own module ``explorer.ui.<lab>_<tab>``, whose ``render()`` alone runs, so a heavy
tab (a quantized model, a fine-tune) costs nothing while another one is shown. Every tab module is imported (their
module level only declares a view), for the names of the settings each one owns.

A tab module exports ``VIEW`` (its LabView, lab name ``<lab>_<tab>``) and ``render()``, which opens its view, draws
its widgets, publishes its view and draws the rest.

The address names the open tab's view only. Two tabs may share a setting's name with its meaning (the SFT and LoRA
tabs' ``steps`` and ``lr``), so on a click to another tab the new tab does not read the address the old one wrote:
it opens as the student left it, or at its defaults; and the old tab's settings leave the address in the same
single write (url_state.write_address). A link or a reload still opens exactly what it names.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import streamlit as st

from .i18n import tr
from .url_state import IGNORED_KEY, PENDING_KEY, Control, LabView, link_and_reset, one_of, write_address


class TabbedLab:
    def __init__(self, lab: str, tabs: tuple[str, ...], default: str):
        self.lab, self.tabs = lab, tabs
        self.view = LabView(lab, [Control("tab", default, one_of(tabs))])
        self.renderers = {tab: f"explorer.ui.{lab}_{tab}" for tab in tabs}

    def tab_name(self, tab: str) -> str:
        return tr(f"{self.lab}.tab.{tab}")

    def choose(self) -> str:
        """The row of tab names; one is always open (a second click on the open tab keeps it open)."""
        chosen = st.segmented_control(tr(f"{self.lab}.tab.label"), self.tabs, key=self.view.key("tab"),
                                      format_func=self.tab_name, required=True, label_visibility="collapsed")
        return chosen if chosen in self.tabs else self.view.controls["tab"].default

    def module(self, tab: str) -> ModuleType:
        return importlib.import_module(self.renderers[tab])

    def show(self, tab: str) -> None:
        """Draw the open tab: after the page's own widgets and the chooser, before anything below the tab."""
        module = self.module(tab)
        other_views = [self.module(t).VIEW for t in self.tabs if t != tab]
        others = frozenset().union(*(view.controls for view in other_views))
        mine = frozenset(module.VIEW.controls)
        # A click on another tab: the address still names the tab shown before (a link, a reload or Back set the
        # chooser from the address, so they agree). The new tab then opens where the student left it.
        switched = tab != st.query_params.get("tab", self.view.controls["tab"].default)
        st.session_state[IGNORED_KEY] = mine if switched else frozenset()
        self.view.publish(write=False)  # written once, with the tab's own view, when the tab publishes it
        # the other tabs' settings, owned by no view this run: write_address leaves them out of the address (and a
        # view one of them published in an earlier run is not this run's)
        pending = st.session_state.setdefault(PENDING_KEY, {})
        for view in other_views:
            pending.pop(view.lab, None)
        pending[f"{self.lab}._others"] = (others - mine, {})
        try:
            module.render()
        finally:
            st.session_state[IGNORED_KEY] = frozenset()
        write_address()  # the tab's publish wrote it; this covers a tab that returned before publishing
        with st.sidebar:
            link_and_reset(module.VIEW)  # after the tab published: the link holds this run's view
