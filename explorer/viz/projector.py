"""Figures for a projector: every piece of chart text raised to a size the back row can read."""
from __future__ import annotations

import base64
import math
import re
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .label_room import upright_title_px

PROJECTOR_MIN_PX = 18  # the smallest chart text legible from the back of a classroom at 1920x1080


def _numbers(value: Any) -> list | None:
    """Per-point sizes as a list: to_plotly_json writes a numpy array as {'dtype', 'bdata'} (base64)."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return array.tolist()
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else None


def _raise_fonts(node: Any, min_px: float) -> Any:
    if isinstance(node, dict):
        for name, value in node.items():
            if "font" in name.lower() and isinstance(value, dict):
                size = value.get("size")
                sizes = _numbers(size)
                if isinstance(size, (int, float)) and size < min_px:
                    value["size"] = min_px
                elif sizes is not None:
                    value["size"] = [max(s, min_px) if isinstance(s, (int, float)) else s for s in sizes]
            _raise_fonts(value, min_px)
    elif isinstance(node, list):
        for item in node:
            _raise_fonts(item, min_px)
    return node


_AXIS = re.compile(r"[xy]axis\d*")
_COLOURED = {"heatmap", "contour", "histogram2d", "histogram2dcontour", "surface", "choropleth", "densitymap",
             "densitymapbox", "cone", "streamtube", "isosurface", "volume", "mesh3d"}  # traces with a colour bar


def _at_least(node: dict, path: tuple[str, ...], min_px: float) -> None:
    for name in path:
        node = node.setdefault(name, {})
    if not isinstance(node.get("size"), (int, float)) or node["size"] < min_px:
        if not isinstance(node.get("size"), (list, dict)):  # per-point sizes: _raise_fonts raises each one
            node["size"] = min_px


def _colorbar(owner: dict, min_px: float) -> None:
    _at_least(owner, ("colorbar", "tickfont"), min_px)
    _at_least(owner, ("colorbar", "title", "font"), min_px)


PLOTLY_FONT_PX = 12  # plotly's tick font when a figure sets none; Streamlit's theme draws colour-bar ticks as big
MARGIN_SIDES = {"l": "yaxis", "b": "xaxis", "r": "colorbar"}  # whose tick labels fill each margin


def _tick_px(layout: dict, data: list, owner: str) -> float:
    """The smallest tick font (before raising) of what fills one margin: the x or y axes, or the colour bars."""
    if owner == "colorbar":
        bars = [o.get("colorbar") for o in (*data, *(layout[k] for k in layout if k.startswith("coloraxis")))]
        sizes = [((b or {}).get("tickfont") or {}).get("size") for b in bars if b is not None]
    else:
        sizes = [(layout[k].get("tickfont") or {}).get("size") for k in layout if _AXIS.fullmatch(k)
                 and k.startswith(owner[0])]
    sizes = [s for s in sizes if isinstance(s, (int, float)) and s > 0] or [PLOTLY_FONT_PX]
    return min(sizes)


def _widen_margins(layout: dict, data: list, min_px: float) -> None:
    """Margins grown in proportion to the text that fills them: the figures size their margins for 10-12 px tick
    labels (heatmap.py, grid.py), and at 18 px those overflowed, so Plotly's automargin drew every such chart a
    second time to make room (tests/browser/test_attention_browser.py)."""
    margin = layout.get("margin")
    if not isinstance(margin, dict):
        return
    for side, owner in MARGIN_SIDES.items():
        if isinstance(margin.get(side), (int, float)):
            grown = math.ceil(margin[side] * max(1.0, min_px / _tick_px(layout, data, owner)))
            # the plot keeps its height: a figure sized to give each row a line of its own still does
            if side == "b" and isinstance(layout.get("height"), (int, float)):
                layout["height"] += grown - margin[side]
            margin[side] = grown
    # A vertical axis title raised to min_px can outgrow a short plot and run into the figure's title: the figure
    # grows until the plot holds it.
    title = (layout.get("yaxis") or {}).get("title") or {}
    title = title.get("text") if isinstance(title, dict) else title
    height, top, bottom = layout.get("height"), margin.get("t"), margin.get("b")
    if isinstance(title, str) and all(isinstance(v, (int, float)) for v in (height, top, bottom)):
        short = upright_title_px(title, min_px) - (height - top - bottom)
        if short > 0:
            layout["height"] = math.ceil(height + short)


def for_projector(fig: go.Figure, min_px: float = PROJECTOR_MIN_PX) -> go.Figure:
    """A copy of ``fig`` whose text (titles, axes, ticks, legends, colour bars, annotations, cell texts, hover) is
    at least ``min_px``; text left to plotly's default gets the default raised to ``min_px`` too."""
    spec = fig.to_plotly_json()
    layout = spec.setdefault("layout", {})
    _widen_margins(layout, spec.get("data", []), min_px)  # before the fonts are raised: it reads their old sizes
    font = layout.setdefault("font", {})
    font["size"] = max(font.get("size") or 12, min_px)  # plotly's default is 12 px
    # Three defaults that do not follow the layout's font: hover labels (13 px), bar labels inside a bar (shrunk
    # to fit; "hide" drops a label that cannot fit at min_px rather than let it overlap its neighbours, and hover
    # still shows it) and heatmap cell text (sized to the cell when its textfont has no size).
    hover_font = layout.setdefault("hoverlabel", {}).setdefault("font", {})
    hover_font["size"] = max(hover_font.get("size") or 13, min_px)
    uniform = layout.setdefault("uniformtext", {})
    uniform["minsize"] = max(uniform.get("minsize") or 0, min_px)
    uniform.setdefault("mode", "hide")
    # Streamlit's chart theme sizes axis ticks and titles, colour bars, legends and the title itself in rem, and
    # presenter mode raises the root font to 20 px, which left colour-bar ticks at 0.75 rem = 15 px: every text
    # whose size the theme may set gets a size of its own here.
    axes = {"xaxis", "yaxis"} | {name for name in layout if _AXIS.fullmatch(name)}
    coloraxes = {name for name in layout if name.startswith("coloraxis")}
    for trace in spec.get("data", []):
        axes |= {f"{ax[0]}axis{ax[1:]}" for ax in (trace.get("xaxis"), trace.get("yaxis")) if ax}
        if trace.get("text") is not None or trace.get("texttemplate"):
            _at_least(trace, ("textfont",), font["size"])
        for owner in (trace, trace.get("marker") or {}):
            if isinstance(owner.get("coloraxis"), str):
                coloraxes.add(owner["coloraxis"])
            elif owner is trace and trace.get("type") in _COLOURED or owner.get("colorscale") is not None:
                _colorbar(owner, min_px)
    for name in axes:
        _at_least(layout, (name, "tickfont"), min_px)
        _at_least(layout, (name, "title", "font"), min_px)
    for name in coloraxes:
        _colorbar(layout.setdefault(name, {}), min_px)
    for path in (("title", "font"), ("legend", "font"), ("legend", "title", "font")):
        _at_least(layout, path, min_px)
    for annotation in layout.get("annotations", []):
        _at_least(annotation, ("font",), min_px)
    _raise_fonts(spec, min_px)
    # The spec is plotly's own JSON of a valid figure with font sizes raised: validating it again took ~100 ms for
    # a page of sixteen 32x32 heatmaps, on every rerun while presenting (tests/test_projector.py checks the
    # figure is the same as a validated one).
    return go.Figure(spec, _validate=False)
