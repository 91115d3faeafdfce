"""Several token-labelled matrices in one figure, on one colour scale: the attention lab's heads, the positional
lab's encodings side by side. One figure is much cheaper to build and send than sixteen."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .heatmap import COLORBAR, COLORBAR_ROOM_PX, HEATMAP_AXIS, background, cell_range, to_numpy, unique_labels
from .label_room import (FULL_WIDTH_PX, TICK_PAD_PX, X_TICK_ANGLES, all_category_ticks, row_font_px,
                         row_px, widest_px, x_label_room_px)


def panel_grid(matrices: Sequence, x_labels: Sequence[Sequence[str]], y_labels: Sequence[Sequence[str]],
               titles: Sequence[str], *, title: str = "", cols: int = 4, colorscale: str = "Blues",
               zmin: float = 0.0, zmax: float = 1.0, value_name: str = "weight", x_title: str = "key",
               y_title: str = "query", panel_height: int | None = None, min_width: int = FULL_WIDTH_PX
               ) -> go.Figure:
    """Several token-labelled matrices in one figure with one shared colour scale; -inf cells are grey (the
    background, as in the shared heatmap) and read '-inf' on hover.

    Laid out in pixels so no label is lost or overlaps (see label_room): every row label is shown, once at the
    left when all panels share them, else beside each panel with a gap that holds them at ``min_width`` (the
    narrowest the figure is drawn); each row of panels keeps room for its column labels and the next row's
    titles. ``panel_height`` is a minimum: panels grow until each matrix row has a line of its own."""
    n = len(matrices)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    xs, ys = [unique_labels(x) for x in x_labels], [unique_labels(y) for y in y_labels]
    shared_y = all(y == ys[0] for y in ys)
    longest = max(len(y) for y in ys)
    font = row_font_px(longest)
    panel_px = max(panel_height or 180, longest * row_px(longest))
    label_px = widest_px([s for y in ys for s in y], font) + TICK_PAD_PX
    left_px = label_px + 8
    plot_px = max(min_width - left_px - COLORBAR_ROOM_PX, 100)  # what the panels and gaps share
    gap = min((20 if shared_y else label_px + 16) / plot_px, 0.6 / (cols - 1)) if cols > 1 else 0.0
    width = (1 - gap * (cols - 1)) / cols
    title_px, below_px = 20, max(x_label_room_px(x, font) for x in xs) + 8
    block_px = title_px + panel_px + below_px
    top_px = 50 if title else 10
    plot_h = rows * block_px
    data, layout, annotations = [], {}, []
    for i, (m, xl, yl) in enumerate(zip(matrices, xs, ys)):
        z = to_numpy(m)
        neg_inf = np.isneginf(z)
        r, c = divmod(i, cols)
        axis = "" if i == 0 else str(i + 1)
        x0 = c * (width + gap)
        y1 = 1 - (r * block_px + title_px) / plot_h
        y0 = 1 - (r * block_px + title_px + panel_px) / plot_h
        # Per-cell text only where a cell must read '-inf': 16 heads x 32 x 32 strings would triple the figure.
        text = np.where(neg_inf, "-inf", np.char.mod("%.3f", np.where(neg_inf, 0, z))) if neg_inf.any() else None
        value = "%{text}" if text is not None else "%{z:.3f}"
        data.append(go.Heatmap(
            z=np.where(neg_inf, np.nan, z).astype(np.float32), x=xl, y=yl, text=text,
            xaxis=f"x{axis}", yaxis=f"y{axis}", coloraxis="coloraxis", hoverongaps=True,
            hovertemplate=f"{titles[i]}<br>{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value_name}: {value}"
                          "<extra></extra>",
        ))
        layout[f"xaxis{axis}"] = dict(domain=[x0, x0 + width], anchor=f"y{axis}", autotickangles=X_TICK_ANGLES,
                                      tickfont=dict(size=font), automargin=False, range=cell_range(len(xl)),
                                      **HEATMAP_AXIS)
        layout[f"yaxis{axis}"] = dict(domain=[y0, y1], anchor=f"x{axis}", range=cell_range(len(yl), True),
                                      showticklabels=not shared_y or c == 0, automargin=c == 0,
                                      **all_category_ticks(yl, font), **HEATMAP_AXIS)
        annotations.append(dict(text=titles[i], x=x0 + width / 2, y=y1, xref="paper", yref="paper",
                                showarrow=False, yanchor="bottom", font=dict(size=11)))
    layout.update(
        title=dict(text=title), annotations=annotations, height=math.ceil(top_px + plot_h + 4),
        coloraxis=dict(colorscale=colorscale, cmin=zmin, cmax=zmax,
                       colorbar=dict(title=dict(text=value_name), **COLORBAR)),
        # the colour bar's room kept, as in the shared heatmap: a push beyond the margin draws the figure twice
        margin=dict(l=math.ceil(left_px), r=COLORBAR_ROOM_PX, t=top_px, b=4, pad=0),
        plot_bgcolor=background(np.isneginf(np.concatenate([to_numpy(m).ravel() for m in matrices]))),
    )
    return go.Figure(data=data, layout=layout)
