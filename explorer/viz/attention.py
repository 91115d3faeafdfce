"""Figures of the attention lab: pure functions, data in, go.Figure out.

Single matrices go through the shared token-labelled ``heatmap``; the head grid and the sqrt(d_k) study put several
panels in one figure (one figure is much cheaper to build and send than sixteen), the grid through the shared
``panel_grid``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..i18n import t
from ..labs.attention import ParamRow, Sharpness, SqrtDkStudy
from .grid import panel_grid
from .heatmap import heatmap, to_numpy
from .label_room import FULL_WIDTH_PX, STEP_WIDTH_PX

MAX_SHOWN_COLS = 64  # wider matrices show their first 64 columns: 512 columns are unreadable and slow to send


def _height(rows: int) -> int:
    return max(220, min(560, 60 + 22 * rows))


MAX_VALUES_SHOWN = 10  # numbers in the cells up to 10 x 10: a projected 11th column no longer fits them


def shared_bound(*matrices) -> float:
    """The largest finite |value| of several matrices: one colour scale for steps that must be compared."""
    finite = [np.abs(z[np.isfinite(z)]) for z in map(to_numpy, matrices)]
    return max((float(f.max()) for f in finite if f.size), default=0.0) or 1.0


def matrix_figure(matrix, x_labels: Sequence[str] | None, y_labels: Sequence[str], *, title: str,
                  kind: str = "scores", x_title: str | None = None, y_title: str | None = None,
                  show_values: bool | None = None, bound: float | None = None, lang: str = "en") -> go.Figure:
    """One step of the computation. kind: 'weights' (0..1, blues), 'scores' or 'vectors' (diverging around 0),
    'mask' (0 or -inf). Vectors wider than MAX_SHOWN_COLS show their first columns. The axis titles default to
    key (columns) and query (rows); every word is in ``lang``.

    ``bound`` fixes a diverging scale at -bound..bound, so that steps drawn with the same bound compare by
    colour (Q Kᵀ and Q Kᵀ / √d_k: the scaled one is paler); by default the matrix's own largest |value|."""
    x_title = t(lang, "attention.viz.key_long") if x_title is None else x_title
    y_title = t(lang, "attention.viz.query_long") if y_title is None else y_title
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
    value_name = t(lang, "attention.viz.weight" if kind == "weights" else "attention.viz.value")
    fig = heatmap(z, x_labels, y_labels, title=title, x_title=x_title, y_title=y_title, show_values=show_values,
                  height=_height(rows), value_format=".2f", value_name=value_name, lang=lang, **style)
    if kind == "mask":  # white cells in both themes: the dark theme's light text would vanish on them
        fig.data[0].update(showscale=False, textfont=dict(color="#31333f"))
        fig.layout.margin.r = 10  # no colour bar to keep room for
    return fig


PANEL_TITLE_PX = 28  # a panel's title above it, in one line at the projector's 18 px
PANEL_GAP_PX = 24  # between the panels of a pair that share their row labels


def pair_figure(left: go.Figure, right: go.Figure, title: str) -> go.Figure:
    """Two step figures side by side, one figure (a step that reads against the one before it: Q Kᵀ beside
    Q Kᵀ / √d_k, M beside the masked scores). Both keep their traces, colour scales and cell numbers; the panels
    share the rows' labels, shown at the left, and the right panel's colour bar; the left's own bar is dropped when
    both are drawn on the same scale. The pair is drawn at full width, so each panel has about the room a step had
    in its column before (label_room)."""
    lm, rm = left.layout.margin, right.layout.margin
    plot_px = max(FULL_WIDTH_PX - lm.l - rm.r, 200)
    gap = PANEL_GAP_PX / plot_px
    half = (1 - gap) / 2
    same_scale = all(getattr(left.data[0], a) == getattr(right.data[0], a) for a in ("zmin", "zmax"))
    data = []
    for i, fig in enumerate((left, right)):
        for trace in fig.data:
            trace = go.Heatmap(trace)
            if i:
                trace.update(xaxis="x2", yaxis="y2")
            elif same_scale or trace.showscale is False:
                trace.update(showscale=False)
            data.append(trace)
    top = 40 + PANEL_TITLE_PX
    height = max(left.layout.height, right.layout.height) - max(lm.t, rm.t) + top
    axes = {}
    for i, fig in enumerate((left, right)):
        suffix, domain = ("", [0, half]) if i == 0 else ("2", [half + gap, 1])
        axes[f"xaxis{suffix}"] = fig.layout.xaxis.to_plotly_json() | dict(domain=domain, anchor=f"y{suffix}")
        y = fig.layout.yaxis.to_plotly_json() | dict(anchor=f"x{suffix}")
        if i:
            y.update(showticklabels=False, title=dict(text=""))
        axes[f"yaxis{suffix}"] = y
    annotations = [dict(text=fig.layout.title.text, x=(0.5 * half if i == 0 else 1 - 0.5 * half), y=1,
                        xref="paper", yref="paper", yanchor="bottom", showarrow=False, font=dict(size=14))
                   for i, fig in enumerate((left, right))]
    grey = {left.layout.plot_bgcolor, right.layout.plot_bgcolor} - {"rgba(0,0,0,0)"}
    return go.Figure(data=data, layout=dict(
        title=dict(text=title), height=height, annotations=annotations, **axes,
        margin=dict(l=lm.l, r=max(rm.r, 10), t=top, b=max(lm.b, rm.b), pad=0),
        plot_bgcolor=grey.pop() if grey else "rgba(0,0,0,0)",
    ))


def vectors_grid(matrices: Sequence, labels: Sequence[str], titles: Sequence[str], lang: str = "en") -> go.Figure:
    """Per-token vectors (e.g. Q, K, V of one head) side by side on one diverging colour scale."""
    mats = [to_numpy(m)[:, :MAX_SHOWN_COLS] for m in matrices]
    bound = max(float(np.abs(m).max()) for m in mats) or 1.0
    dims = [[f"d{i}" for i in range(m.shape[1])] for m in mats]
    return panel_grid(mats, dims, [labels] * len(mats), titles, cols=len(mats), colorscale="RdBu_r", zmin=-bound,
                      zmax=bound, value_name=t(lang, "attention.viz.value"),
                      x_title=t(lang, "attention.steps.dimension"), y_title=t(lang, "attention.steps.token"),
                      panel_height=160, min_width=STEP_WIDTH_PX)


def head_grid(weights, labels: Sequence[str], *, kv_heads: Sequence[int] | None = None, selected: int | None = None,
              title: str = "", cols: int = 4, lang: str = "en") -> go.Figure:
    """All heads' attention weights side by side, one panel per head, one shared 0..1 colour scale.

    weights: (n_head, T, T). kv_heads[h] names the key/value head that query head h reads (GQA / MQA).
    """
    w = to_numpy(weights)
    titles = []
    for h in range(w.shape[0]):
        shared = kv_heads is not None and len(set(kv_heads)) < len(kv_heads)  # only GQA / MQA share kv heads
        name = (t(lang, "attention.grid.panel_shared", head=h + 1, kv=kv_heads[h] + 1) if shared
                else t(lang, "attention.grid.panel", head=h + 1))
        titles.append(f"<b>▶ {name}</b>" if selected == h else name)
    return panel_grid(list(w), [labels] * len(w), [labels] * len(w), titles, title=title, cols=cols,
                      value_name=t(lang, "attention.viz.weight"), x_title=t(lang, "attention.viz.key"),
                      y_title=t(lang, "attention.viz.query"))


def sqrt_dk_figure(study: SqrtDkStudy, current: Sharpness | None = None, lang: str = "en") -> go.Figure:
    """Largest weight and entropy of the softmax as d_k grows, with and without dividing by sqrt(d_k)."""
    say = lambda key, **params: t(lang, f"attention.sqrt_dk.{key}", **params)  # noqa: E731
    data = []
    panels = (("x", "y", study.max_weight_scaled, study.max_weight_unscaled, "max"),
              ("x2", "y2", study.entropy_scaled, study.entropy_unscaled, "entropy"))
    colours = {"scaled": "#1f77b4", "unscaled": "#d62728"}
    for xa, ya, scaled, unscaled, what in panels:
        for name, values in (("scaled", scaled), ("unscaled", unscaled)):
            label = say(name)
            data.append(go.Scatter(
                x=list(study.d_k), y=list(values), mode="lines+markers", name=label, legendgroup=name,
                showlegend=what == "max", xaxis=xa, yaxis=ya, line=dict(color=colours[name]),
                hovertemplate=say("hover_curve", x="%{x}", label=label, y="%{y:.3f}") + "<extra></extra>",
            ))
        if current is not None:
            values = ((current.max_weight_scaled, current.max_weight_unscaled) if what == "max"
                      else (current.entropy_scaled, current.entropy_unscaled))
            data.append(go.Scatter(
                x=[current.d_k, current.d_k], y=list(values), mode="markers", name=say("this_layer"),
                legendgroup="current", showlegend=what == "max", xaxis=xa, yaxis=ya,
                marker=dict(symbol="star", size=14, color=[colours["scaled"], colours["unscaled"]],
                            line=dict(color="black", width=1)),
                hovertemplate=say("hover_this_layer", x="%{x}", y="%{y:.3f}") + "<extra></extra>",
            ))
    data.append(go.Scatter(
        x=[study.d_k[0], study.d_k[-1]], y=[study.uniform_entropy] * 2, mode="lines", xaxis="x2", yaxis="y2",
        name=say("uniform"), line=dict(color="grey", dash="dash"),
        hovertemplate=say("hover_uniform", y="%{y:.2f}") + "<extra></extra>",
    ))
    log_x = dict(type="log", dtick=math.log10(2), tickvals=list(study.d_k), title=dict(text=say("x_axis")))
    layout = dict(
        height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
        xaxis=dict(domain=[0, 0.45], anchor="y", **log_x),
        yaxis=dict(anchor="x", range=[0, 1.05], title=dict(text=say("max_axis"))),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", **log_x),
        yaxis2=dict(anchor="x2", rangemode="tozero", title=dict(text=say("entropy_axis"))),
        title=dict(text=say("title")),
    )
    return go.Figure(data=data, layout=layout)


def params_figure(rows: Sequence[ParamRow], lang: str = "en") -> go.Figure:
    """Parameters of W^Q, W^K, W^V, W^O for each attention kind, stacked."""
    kinds = [t(lang, "attention.params.bar", kind=r.kind, n_kv_head=r.n_kv_head) for r in rows]
    parts = (("W^Q", "w_q", "#1f77b4"), ("W^K", "w_k", "#ff7f0e"), ("W^V", "w_v", "#2ca02c"),
             ("W^O", "w_o", "#9467bd"))
    data = [go.Bar(x=kinds, y=[getattr(r, attr) for r in rows], name=name, marker_color=colour,
                   hovertemplate=t(lang, "attention.params.hover", name=name, y="%{y:,}") + "<extra></extra>")
            for name, attr, colour in parts]
    return go.Figure(data=data, layout=dict(
        barmode="stack", height=300, margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text=t(lang, "attention.params.title")),
        yaxis=dict(title=dict(text=t(lang, "attention.params.y_axis"))),
    ))
