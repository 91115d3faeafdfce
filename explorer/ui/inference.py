"""Streamlit glue of the inference lab: its tabs (explorer.ui.tabbed_lab), one module each,
``explorer.ui.inference_<tab>``, and the facts line about the model every tab measures."""
from __future__ import annotations

from ..labs.inference import TABS, InferenceSettings, ModelFacts, run
from ..labs.outcome import Outcome
from .tabbed_lab import TabbedLab

LAB = TabbedLab("inference", TABS, InferenceSettings().tab)
VIEW = LAB.view
TAB_RENDERERS = LAB.renderers


def outcome(tab: str) -> Outcome[InferenceSettings, ModelFacts]:
    """The tab shown and the model's facts (read from the file's header once per process)."""
    return run(InferenceSettings(tab))
