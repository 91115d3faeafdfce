"""Figures for a projector: every piece of chart text raised to a size the back row can read."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

PROJECTOR_MIN_PX = 18  # the smallest chart text legible from the back of a classroom at 1920x1080


def _raise_fonts(node: Any, min_px: float) -> Any:
    if isinstance(node, dict):
        for name, value in node.items():
            if "font" in name.lower() and isinstance(value, dict):
                size = value.get("size")
                if isinstance(size, (int, float)) and size < min_px:
                    value["size"] = min_px
                elif isinstance(size, (list, tuple)):
                    value["size"] = [max(s, min_px) if isinstance(s, (int, float)) else s for s in size]
            _raise_fonts(value, min_px)
    elif isinstance(node, list):
        for item in node:
            _raise_fonts(item, min_px)
    return node


def for_projector(fig: go.Figure, min_px: float = PROJECTOR_MIN_PX) -> go.Figure:
    """A copy of ``fig`` whose text (titles, axes, ticks, legends, colour bars, annotations, cell texts, hover) is
    at least ``min_px``; text left to plotly's default gets the default raised to ``min_px`` too."""
    spec = fig.to_plotly_json()
    layout = spec.setdefault("layout", {})
    font = layout.setdefault("font", {})
    font["size"] = max(font.get("size") or 12, min_px)  # plotly's default is 12 px
    _raise_fonts(spec, min_px)
    return go.Figure(spec)
