"""Figures of the attention lab: pure functions, data in, go.Figure out.

Single matrices go through the shared token-labelled ``heatmap``; the head grid and the sqrt(d_k) study put several
panels in one figure (one figure is much cheaper to build and send than sixteen).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..labs.attention import ParamRow, Sharpness, SqrtDkStudy
from .heatmap import HEATMAP_AXIS, background, cell_range, heatmap, to_numpy, unique_labels
from .label_room import (COLORBAR_PX, FULL_WIDTH_PX, STEP_WIDTH_PX, TICK_PAD_PX, X_TICK_ANGLES, all_category_ticks,
                         row_font_px, row_px, widest_px, x_label_room_px)

MAX_SHOWN_COLS = 64  # wider matrices show their first 64 columns: 512 columns are unreadable and slow to send


def _height(rows: int) -> int:
    return max(220, min(560, 60 + 22 * rows))


MAX_VALUES_SHOWN = 10  # numbers in the cells up to 10 x 10: a projected 11th column no longer fits them


def shared_bound(*matrices) -> float:
    """The largest finite |value| of several matrices: one colour scale for steps that must be compared."""
    finite = [np.abs(z[np.isfinite(z)]) for z in map(to_numpy, matrices)]
    return max((float(f.max()) for f in finite if f.size), default=0.0) or 1.0


def matrix_figure(matrix, x_labels: Sequence[str] | None, y_labels: Sequence[str], *, title: str,
                  kind: str = "scores", x_title: str = "key (attended to)", y_title: str = "query (attending)",
                  show_values: bool | None = None, bound: float | None = None) -> go.Figure:
    """One step of the computation. kind: 'weights' (0..1, blues), 'scores' or 'vectors' (diverging around 0),
    'mask' (0 or -inf). Vectors wider than MAX_SHOWN_COLS show their first columns.

    ``bound`` fixes a diverging scale at -bound..bound, so that steps drawn with the same bound compare by
    colour (Q Kᵀ and Q Kᵀ / √d_k: the scaled one is paler); by default the matrix's own largest |value|."""
    z = to_numpy(matrix)
    if kind == "vectors":
        z = z[:, :MAX_SHOWN_COLS]
        x_labels = [str(i) for i in range(z.shape[1])] if x_labels is None else list(x_labels)[:MAX_SHOWN_COLS]
    rows, cols = z.shape
    if show_values is None:  # numbers in the cells only while they still fit
        small = rows <= MAX_VALUES_SHOWN and cols <= MAX_VALUES_SHOWN
        show_values = (kind in ("weights", "scores") and small) or (kind == "mask" and rows <= 16)
    bound = bound if bound is not None else shared_bound(z)
    style = {
        "weights": dict(colorscale="Blues", zmin=0.0, zmax=1.0),
        "mask": dict(colorscale=[[0, "#ffffff"], [1, "#ffffff"]], zmin=0.0, zmax=1.0),
        "scores": dict(colorscale="RdBu_r", zmin=-bound, zmax=bound),
        "vectors": dict(colorscale="RdBu_r", zmin=-bound, zmax=bound),
    }[kind]
    fig = heatmap(z, x_labels, y_labels, title=title, x_title=x_title, y_title=y_title, show_values=show_values,
                  height=_height(rows), value_format=".2f", **style)
    if kind == "mask":  # white cells in both themes: the dark theme's light text would vanish on them
        fig.data[0].update(showscale=False, textfont=dict(color="#31333f"))
    return fig


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
    plot_px = max(min_width - left_px - COLORBAR_PX - 10, 100)  # what the panels and gaps share
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
        coloraxis=dict(colorscale=colorscale, cmin=zmin, cmax=zmax, colorbar=dict(title=dict(text=value_name))),
        margin=dict(l=math.ceil(left_px), r=10, t=top_px, b=4, pad=0),
        plot_bgcolor=background(np.isneginf(np.concatenate([to_numpy(m).ravel() for m in matrices]))),
    )
    return go.Figure(data=data, layout=layout)


def vectors_grid(matrices: Sequence, labels: Sequence[str], titles: Sequence[str]) -> go.Figure:
    """Per-token vectors (e.g. Q, K, V of one head) side by side on one diverging colour scale."""
    mats = [to_numpy(m)[:, :MAX_SHOWN_COLS] for m in matrices]
    bound = max(float(np.abs(m).max()) for m in mats) or 1.0
    dims = [[f"d{i}" for i in range(m.shape[1])] for m in mats]
    return panel_grid(mats, dims, [labels] * len(mats), titles, cols=len(mats), colorscale="RdBu_r", zmin=-bound,
                      zmax=bound, value_name="value", x_title="dimension", y_title="token", panel_height=160,
                      min_width=STEP_WIDTH_PX)


def head_grid(weights, labels: Sequence[str], *, kv_heads: Sequence[int] | None = None, selected: int | None = None,
              title: str = "", cols: int = 4) -> go.Figure:
    """All heads' attention weights side by side, one panel per head, one shared 0..1 colour scale.

    weights: (n_head, T, T). kv_heads[h] names the key/value head that query head h reads (GQA / MQA).
    """
    w = to_numpy(weights)
    titles = []
    for h in range(w.shape[0]):
        shared = kv_heads is not None and len(set(kv_heads)) < len(kv_heads)  # only GQA / MQA share kv heads
        name = f"head {h + 1}" + (f" · kv {kv_heads[h] + 1}" if shared else "")
        titles.append(f"<b>▶ {name}</b>" if selected == h else name)
    return panel_grid(list(w), [labels] * len(w), [labels] * len(w), titles, title=title, cols=cols)


def sqrt_dk_figure(study: SqrtDkStudy, current: Sharpness | None = None) -> go.Figure:
    """Largest weight and entropy of the softmax as d_k grows, with and without dividing by sqrt(d_k)."""
    data = []
    panels = (("x", "y", study.max_weight_scaled, study.max_weight_unscaled, "max"),
              ("x2", "y2", study.entropy_scaled, study.entropy_unscaled, "entropy"))
    colours = {"scaled": "#1f77b4", "unscaled": "#d62728"}
    for xa, ya, scaled, unscaled, what in panels:
        for name, values in (("scaled", scaled), ("unscaled", unscaled)):
            label = "÷ √d_k (scaled)" if name == "scaled" else "no scaling"
            data.append(go.Scatter(
                x=list(study.d_k), y=list(values), mode="lines+markers", name=label, legendgroup=name,
                showlegend=what == "max", xaxis=xa, yaxis=ya, line=dict(color=colours[name]),
                hovertemplate=f"d_k = %{{x}}<br>{label}: %{{y:.3f}}<extra></extra>",
            ))
        if current is not None:
            values = ((current.max_weight_scaled, current.max_weight_unscaled) if what == "max"
                      else (current.entropy_scaled, current.entropy_unscaled))
            data.append(go.Scatter(
                x=[current.d_k, current.d_k], y=list(values), mode="markers", name="this layer's heads",
                legendgroup="current", showlegend=what == "max", xaxis=xa, yaxis=ya,
                marker=dict(symbol="star", size=14, color=[colours["scaled"], colours["unscaled"]],
                            line=dict(color="black", width=1)),
                hovertemplate="this layer, d_k = %{x}: %{y:.3f}<extra></extra>",
            ))
    data.append(go.Scatter(
        x=[study.d_k[0], study.d_k[-1]], y=[study.uniform_entropy] * 2, mode="lines", xaxis="x2", yaxis="y2",
        name="uniform (no preference)", line=dict(color="grey", dash="dash"),
        hovertemplate="uniform attention: %{y:.2f} bits<extra></extra>",
    ))
    log_x = dict(type="log", dtick=math.log10(2), tickvals=list(study.d_k), title=dict(text="d_k (log scale)"))
    layout = dict(
        height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
        xaxis=dict(domain=[0, 0.45], anchor="y", **log_x),
        yaxis=dict(anchor="x", range=[0, 1.05], title=dict(text="largest softmax weight (mean over queries)")),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", **log_x),
        yaxis2=dict(anchor="x2", rangemode="tozero", title=dict(text="entropy of the weights (bits)")),
        title=dict(text="Why divide by √d_k: the softmax as the heads grow"),
    )
    return go.Figure(data=data, layout=layout)


def params_figure(rows: Sequence[ParamRow]) -> go.Figure:
    """Parameters of W^Q, W^K, W^V, W^O for each attention kind, stacked."""
    kinds = [f"{r.kind} (n_kv_head = {r.n_kv_head})" for r in rows]
    parts = (("W^Q", "w_q", "#1f77b4"), ("W^K", "w_k", "#ff7f0e"), ("W^V", "w_v", "#2ca02c"),
             ("W^O", "w_o", "#9467bd"))
    data = [go.Bar(x=kinds, y=[getattr(r, attr) for r in rows], name=name, marker_color=colour,
                   hovertemplate=f"{name}: %{{y:,}} parameters<extra></extra>")
            for name, attr, colour in parts]
    return go.Figure(data=data, layout=dict(
        barmode="stack", height=300, margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text="Parameters of this attention layer"), yaxis=dict(title=dict(text="parameters")),
    ))
