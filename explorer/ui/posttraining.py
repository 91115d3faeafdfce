"""Streamlit glue of the post-training lab: its tabs (explorer.ui.tabbed_lab), one module each,
``explorer.ui.posttraining_<tab>``."""
from __future__ import annotations

from ..labs.posttraining import TABS, PosttrainingSettings
from .tabbed_lab import TabbedLab

LAB = TabbedLab("posttraining", TABS, PosttrainingSettings().tab)
VIEW = LAB.view
TAB_RENDERERS = LAB.renderers
