"""The heatmap every lab uses: axes labelled with the actual tokens, values on hover, -inf shown as such."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..i18n import t
from .label_room import (TICK_PAD_PX, X_TICK_ANGLES, all_category_ticks, row_font_px, row_px, upright_title_px,
                         widest_px, x_label_room_px)


def unique_labels(tokens: Sequence[str]) -> list[str]:
    """Plotly merges equal category labels; number repeated tokens so 'the' twice stays two rows."""
    seen: dict[str, int] = {}
    out = []
    for tok in tokens:
        n = seen.get(tok, 0)
        seen[tok] = n + 1
        out.append(tok if n == 0 else f"{tok} ({n + 1})")
    return out


def to_numpy(m) -> np.ndarray:
    """Figures draw numpy; a torch tensor is copied off its device without this module importing torch."""
    if hasattr(m, "detach"):
        m = m.detach().float().cpu().numpy()
    return np.asarray(m, dtype=float)


# Masked (-inf) cells are left empty and show the plot's background (margin.pad = 0: Streamlit's theme pads the
# plot area by 8 px, a frame once the background is grey): a mid grey with no hue stands apart from
# every colour scale of the app (Blues, RdBu, Reds, Oranges) and from both themes' backgrounds (white, and
# Streamlit's dark #0e1117), and white text on it stays legible. Grid lines are off: the dark theme drew them
# across the empty cells, which then looked struck through.
MASKED_COLOUR = "#6e6e6e"
MASKED_TEXT = "−∞"
MASKED_TEXT_COLOUR = "#ffffff"
HEATMAP_AXIS = dict(type="category", showgrid=False, zeroline=False, showline=False)

# Margins that already hold what Plotly's automargin would push them to: when a colour bar or an axis needs more
# room than its margin, Plotly draws the whole figure a second time, and that doubled the browser's work on every
# slider move (the attention lab's 3 x 3 score heatmap: 23 ms -> 10 ms to draw in Chromium). Automargin stays on,
# so a label wider than the estimate (projector fonts) still gets its room, at the price of that second draw.
# Measured in Chromium under Streamlit's theme (ticks outside, 5 px long; a 14 px title 24 px off the labels): a
# title took 42-48 px beyond its labels, a colour bar 88-92 px.
AXIS_TITLE_PX = 52
AXIS_TITLE_FONT_PX = 14  # Streamlit's theme draws axis titles at 14 px
COLORBAR_ROOM_PX = 100
# The colour bar starts at the plot's edge: Plotly's default, 2 % of the plot's width beyond it, asks for a room
# that grows with the screen.
COLORBAR = dict(x=1.0)


def left_room_px(labels: Sequence[str], font_px: float, titled: bool = True) -> float:
    """The left margin that holds a category axis's tick labels (upper estimate) and, if any, its title."""
    return widest_px(labels, font_px) + TICK_PAD_PX + (AXIS_TITLE_PX if titled else 0)


def background(neg_inf: np.ndarray) -> str:
    """Grey behind a matrix with masked cells; none otherwise, where it would only show as a hairline at the
    edge of the drawn cells."""
    return MASKED_COLOUR if neg_inf.any() else "rgba(0,0,0,0)"


def cell_range(n: int, reversed_: bool = False) -> list[float]:
    """The axis range that ends exactly at the outer cells' edges, so no background shows around them (it
    would read as masked cells). Reversed puts the first row at the top."""
    return [n - 0.5, -0.5] if reversed_ else [-0.5, n - 0.5]


def masked_overlay(z: np.ndarray, x: Sequence[str], y: Sequence[str], *, x_title: str, y_title: str,
                   value_name: str = "value", lang: str = "en") -> go.Heatmap | None:
    """The -inf cells written '−∞' over the grey background, or None when nothing is masked."""
    neg_inf = np.isneginf(z)
    if not neg_inf.any():
        return None
    return go.Heatmap(
        z=np.where(neg_inf, 0.0, np.nan), x=x, y=y, colorscale=[[0, MASKED_COLOUR], [1, MASKED_COLOUR]],
        showscale=False, hoverongaps=False, text=np.where(neg_inf, MASKED_TEXT, ""), texttemplate="%{text}",
        textfont=dict(color=MASKED_TEXT_COLOUR), name="masked",
        hovertemplate=f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value_name}: {t(lang, 'heatmap.masked')}"
                      "<extra></extra>",
    )


def heatmap(
    matrix,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    x_title: str = "key (attended to)",
    y_title: str = "query (attending)",
    colorscale: str = "Blues",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    show_values: bool = False,
    height: int | None = None,
    value_format: str = ".3f",
    value_name: str = "value",
    lang: str = "en",
) -> go.Figure:
    """A labelled heatmap. Cells equal to -inf are grey and read '-inf' on hover ('−∞' in the cell when values
    are shown).

    Every row keeps its label: the figure grows until each row has a line of its own (Plotly used to leave
    every other label out). Column labels stand upright or thin out when crowded, with room kept below.
    """
    z = to_numpy(matrix)
    rows, cols = z.shape
    x = unique_labels(x_labels) if x_labels is not None else [str(i) for i in range(cols)]
    y = unique_labels(y_labels) if y_labels is not None else [str(i) for i in range(rows)]
    neg_inf = np.isneginf(z)
    text = np.where(neg_inf, "-inf", np.vectorize(lambda v: format(v, value_format))(np.where(neg_inf, 0, z)))
    shown = np.where(neg_inf, np.nan, z)
    font = row_font_px(rows)
    top = 40 if title else 10
    bottom = x_label_room_px(x, font) + AXIS_TITLE_PX  # the labels, then the axis title
    plot = max(rows * row_px(rows), upright_title_px(y_title, AXIS_TITLE_FONT_PX))
    height = max(height or max(260, 40 + 24 * rows), math.ceil(top + bottom + plot))
    overlay = masked_overlay(z, x, y, x_title=x_title, y_title=y_title, value_name=value_name,
                             lang=lang) if show_values else None
    if overlay is not None:  # Plotly writes a text in empty cells too: leave the overlay's '−∞' alone there
        text = np.where(neg_inf, "", text)
    data = [go.Heatmap(
        z=shown, x=x, y=y, text=text, colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, colorbar=COLORBAR,
        texttemplate="%{text}" if show_values else None,
        hovertemplate=f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value_name}: %{{text}}<extra></extra>",
        hoverongaps=overlay is None,  # an empty cell reads '-inf' from this trace's text, unless the overlay does
    )]
    if overlay is not None:
        data.append(overlay)
    # One constructor call: plotly validates every update_* pass again, and that costs several ms per figure,
    # which adds up on pages that draw a dozen heatmaps per slider move.
    return go.Figure(
        data=data,
        layout=dict(
            title=dict(text=title), height=height,
            xaxis=dict(title=dict(text=x_title), autotickangles=X_TICK_ANGLES, tickfont=dict(size=font),
                       range=cell_range(cols), **HEATMAP_AXIS),
            yaxis=dict(title=dict(text=y_title), automargin=True, range=cell_range(rows, reversed_=True),
                       **all_category_ticks(y, font), **HEATMAP_AXIS),
            margin=dict(l=math.ceil(left_room_px(y, font, bool(y_title))), r=COLORBAR_ROOM_PX, t=top, b=bottom,
                        pad=0),
            plot_bgcolor=background(neg_inf),
        ),
    )
