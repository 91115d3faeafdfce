"""Figures of the model-internals lab: pure functions, data in, go.Figure out, every word in the reader's ``lang``.

Every head of the model is one cell of a layers x heads summary (coloured by a statistic of its attention map,
clickable: an invisible marker on every cell carries the hover text and the click), and one layer's heads are drawn
as full, token-labelled maps: 270 maps of about 25 px each were unreadable on a projector.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

from ..i18n import render, t
from ..labs.internals_facts import Entropy, HeadLine
from ..labs.internals_passes import Ablation, LogitLens, head_name
from .grid import panel_grid
from .heatmap import heatmap, to_numpy, unique_labels

HEAD_COLORS = pc.qualitative.Plotly + pc.qualitative.Dark24
SELECTED_COLOUR = "#d62728"
# Red = sharp, blue = diffuse for the entropy (as in the course's notes); the weights on a token in blues.
STAT_SCALES = {"entropy": "RdBu", "first": "Blues", "previous": "Blues", "self": "Blues"}


def _numbers(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def head_labels(n_head: int, lang: str) -> list[str]:
    return [t(lang, "internals.fig.head_n", h=h) for h in range(n_head)]


def lens_row_labels(n_layer: int, lang: str) -> list[str]:
    """The logit lens's and residual map's rows: the embeddings, then after each layer."""
    return [t(lang, "internals.fig.embed")] + [t(lang, "internals.fig.layer_n", n=i) for i in range(n_layer)]


def _strongest_link(p: np.ndarray, labels: Sequence[str], causal: bool) -> tuple[int, int]:
    """(query, key) of the largest weight of one (T, S) map; in a causal model the first token can only read itself,
    so its row is left out."""
    T, S = p.shape
    skip = 1 if causal and T > 1 else 0
    q, k = np.unravel_index(np.argmax(p[skip:]), (T - skip, S))
    return int(q) + skip, int(k)


def head_summary_figure(values, stat: str, patterns, labels: Sequence[str], entropy: Entropy, lang: str,
                        selected: tuple[int, int] | None = None, causal: bool = False) -> go.Figure:
    """Every head of every layer as one cell (layers left to right, heads top to bottom), coloured by ``values``
    (L, H) of the statistic ``stat`` (explorer.labs.internals_facts.HEAD_STATISTICS); hovering a cell names its
    strongest link and its entropy, a click selects it. ``selected`` (layer, head) gets a red frame."""
    v = to_numpy(values)  # (L, H)
    p = to_numpy(patterns)  # (L, H, T, S)
    L, H = v.shape
    stat_name = t(lang, f"internals.stat.{stat}")
    hover = []
    for layer in range(L):
        for head in range(H):
            q, k = _strongest_link(p[layer, head], labels, causal)
            hover.append(t(lang, "internals.fig.summary_hover", layer=layer, head=head, stat=stat_name,
                           value=float(v[layer, head]), query=labels[q], key=labels[k],
                           weight=float(p[layer, head, q, k]), entropy=float(entropy.normalized[layer, head]),
                           nats=float(entropy.nats[layer, head])))
    cells = go.Heatmap(z=v.T, x=list(range(L)), y=list(range(H)), colorscale=STAT_SCALES.get(stat, "Blues"),
                       zmin=0, zmax=1, hoverinfo="skip", xgap=2, ygap=2,
                       colorbar=dict(title=dict(text=stat_name, side="right"), thickness=14))
    # Heatmaps give Streamlit no point selection: a marker on each cell centre does (the nearest one wins).
    markers = go.Scatter(x=[layer for layer in range(L) for _ in range(H)], y=[h for _ in range(L) for h in range(H)],
                         mode="markers", marker=dict(size=14, opacity=0.01, color="#000"),
                         customdata=[[layer, head] for layer in range(L) for head in range(H)],
                         hovertext=hover, hoverinfo="text", showlegend=False, name="heads")
    fig = go.Figure([cells, markers])
    if selected is not None:
        layer, head = selected
        fig.add_shape(type="rect", x0=layer - 0.5, x1=layer + 0.5, y0=head - 0.5, y1=head + 0.5,
                      line=dict(color=SELECTED_COLOUR, width=3))
    fig.update_xaxes(title=t(lang, "internals.fig.layer"), tickmode="array", tickvals=list(range(L)),
                     ticktext=_numbers(L), range=[-0.5, L - 0.5], showgrid=False, zeroline=False)
    fig.update_yaxes(title=t(lang, "internals.fig.head"), tickmode="array", tickvals=list(range(H)),
                     ticktext=_numbers(H), range=[H - 0.5, -0.5], showgrid=False, zeroline=False)
    fig.update_layout(height=70 + 30 * H, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      clickmode="event+select", dragmode=False, hovermode="closest", hoverdistance=30)
    return fig


def layer_heads_figure(pattern, labels: Sequence[str], layer: int, lang: str, selected: int | None = None,
                       cols: int = 3) -> go.Figure:
    """All heads of one layer as full attention maps with the tokens on both axes, on one colour scale."""
    p = to_numpy(pattern)  # (H, T, S)
    H = p.shape[0]
    titles = [t(lang, "internals.fig.head_selected" if h == selected else "internals.fig.head_n", h=h)
              for h in range(H)]
    return panel_grid(list(p), [labels] * H, [labels] * H, titles, title=t(lang, "internals.fig.layer_n", n=layer),
                      cols=cols, value_name=t(lang, "internals.fig.weight"), x_title=t(lang, "internals.fig.key"),
                      y_title=t(lang, "internals.fig.query"))


def zoom_figure(pattern, labels: Sequence[str], layer: int, head: int, lang: str) -> go.Figure:
    """One head's attention map with the tokens on both axes."""
    T = len(labels)
    return heatmap(pattern, labels, labels, title=t(lang, "internals.fig.zoom_title", layer=layer, head=head),
                   x_title=t(lang, "internals.fig.key"), y_title=t(lang, "internals.fig.query"),
                   value_name=t(lang, "internals.fig.weight"), colorscale="Blues", zmin=0, zmax=1,
                   show_values=T <= 10, height=min(760, max(320, 80 + 18 * T)))


def head_view_figure(lines: Sequence[HeadLine], labels: Sequence[str], heads: Sequence[int], layer: int,
                     min_weight: float, lang: str, query: int | None = None) -> go.Figure:
    """BertViz-style view of one layer: queries on the left, keys on the right, a line for every weight above the
    threshold (only query token ``query``'s when given), one colour per head, thicker and darker for larger
    weights."""
    T = len(labels)
    lines = [ln for ln in lines if query is None or ln.query == query]
    shown = unique_labels(labels)
    y = [-i for i in range(T)]
    traces: list[go.BaseTraceType] = []
    bins = [(min_weight, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)]
    for h in heads:
        color = HEAD_COLORS[h % len(HEAD_COLORS)]
        name = t(lang, "internals.fig.head_n", h=h)
        traces.append(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=color, width=4),
                                 legendgroup=f"h{h}", name=name))  # the legend's swatch, drawn solid
        for b, (lo, hi) in enumerate(bins):
            sel = [ln for ln in lines if ln.head == h and lo <= ln.weight < hi]
            xs, ys = [], []
            for ln in sel:
                xs += [0, 1, None]
                ys += [-ln.query, -ln.key, None]
            traces.append(go.Scatter(
                x=xs or [None], y=ys or [None], mode="lines", line=dict(color=color, width=1 + 1.5 * b),
                opacity=0.25 + 0.22 * b, hoverinfo="skip", legendgroup=f"h{h}", name=name, showlegend=False,
            ))
    traces.append(go.Scatter(x=[0] * T, y=y, mode="text", text=shown, textposition="middle left",
                             hoverinfo="skip", showlegend=False))
    traces.append(go.Scatter(x=[1] * T, y=y, mode="text", text=shown, textposition="middle right",
                             hoverinfo="skip", showlegend=False))
    fig = go.Figure(traces)
    fig.update_xaxes(range=[-0.6, 1.6], tickvals=[0, 1],
                     ticktext=[t(lang, "internals.fig.query"), t(lang, "internals.fig.key")],
                     showgrid=False, zeroline=False, side="top")
    fig.update_yaxes(visible=False, range=[-T + 0.5, 0.5])
    fig.update_layout(height=max(300, 60 + 20 * T), margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white",
                      legend=dict(title=t(lang, "internals.fig.view_legend", layer=layer, min_weight=min_weight),
                                  itemclick="toggle"))
    return fig


def _after_name(heads: Sequence[tuple[int, int]], lang: str) -> str:
    if not heads:
        return t(lang, "internals.fig.after_none")
    if len(heads) <= 4:
        return t(lang, "internals.fig.after_some", heads=", ".join(map(head_name, heads)))
    return t(lang, "internals.fig.after_many", n=len(heads))


def ablation_bars(ab: Ablation, lang: str) -> go.Figure:
    """Before and after side by side for every bar label."""
    names = ab.bar_labels
    shown = [n if len(n) <= 40 else n[:37] + "…" for n in unique_labels(names)]
    before, after = t(lang, "internals.fig.before"), _after_name(ab.heads, lang)
    fig = go.Figure([
        go.Bar(x=shown, y=ab.before, name=before, marker_color="#1f77b4",
               hovertemplate=f"%{{x}}<br>{before}: %{{y:.4f}}<extra></extra>"),
        go.Bar(x=shown, y=ab.after, name=after, marker_color="#ff7f0e",
               hovertemplate=f"%{{x}}<br>{after}: %{{y:.4f}}<extra></extra>"),
    ])
    x_title = "internals.fig.candidate" if ab.token_ids else "internals.fig.comparison"
    fig.update_layout(barmode="group", yaxis_title=render(ab.value_name, lang), xaxis_title=t(lang, x_title),
                      height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(type="category", tickangle=-30 if len(names) > 6 else 0)
    return fig


def pattern_change_figure(ab: Ablation, lang: str) -> go.Figure:
    """Mean |Δ attention weight| of every head (layers x heads); the zeroed heads are framed."""
    change = to_numpy(ab.pattern_change)  # (L, H)
    L, H = change.shape
    fig = heatmap(change.T, _numbers(L), head_labels(H, lang), x_title=t(lang, "internals.fig.layer"),
                  y_title=t(lang, "internals.fig.head"), colorscale="Oranges", zmin=0,
                  height=max(240, 60 + 22 * H), value_format=".4f")
    for layer, head in ab.heads:
        fig.add_shape(type="rect", x0=layer - 0.5, x1=layer + 0.5, y0=head - 0.5, y1=head + 0.5,
                      line=dict(color=SELECTED_COLOUR, width=2))
    fig.update_traces(hovertemplate=t(lang, "internals.fig.change_hover") + "<extra></extra>")
    return fig


def logit_lens_figure(lens: LogitLens, input_labels: Sequence[str], lang: str) -> go.Figure:
    """Rows: the residual stream after each layer; columns: positions (the input token there); cells: the top
    next-token prediction read from that layer, coloured by its probability."""
    probs = to_numpy(lens.probs)
    L1, T = probs.shape
    x = unique_labels(input_labels)
    text = [[tok if len(tok) <= 10 else tok[:9] + "…" for tok in row] for row in lens.tokens]
    fig = go.Figure(go.Heatmap(
        z=probs, x=x, y=lens_row_labels(L1 - 1, lang), text=text, customdata=np.array(lens.tokens, dtype=object),
        texttemplate="%{text}" if T <= 24 else None, textfont=dict(size=10), colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title="p(top)"), hovertemplate=t(lang, "internals.fig.lens_hover") + "<extra></extra>",
    ))
    fig.update_layout(height=max(360, 60 + 20 * L1), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title=t(lang, "internals.fig.lens_x"), yaxis_title=t(lang, "internals.fig.read_after"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45 if T > 8 else 0)
    return fig


def residual_norm_figure(norms, labels: Sequence[str], lang: str) -> go.Figure:
    """‖x‖ of every token after the embeddings and after every layer, on a log colour scale (a few tokens grow
    far larger than the rest)."""
    n = to_numpy(norms)  # (L + 1, T)
    L1, T = n.shape
    fig = go.Figure(go.Heatmap(
        z=np.log10(np.maximum(n, 1e-6)), x=unique_labels(labels), y=lens_row_labels(L1 - 1, lang),
        customdata=n, colorscale="Viridis", colorbar=dict(title="log10 ‖x‖"),
        hovertemplate=t(lang, "internals.fig.norm_hover") + "<extra></extra>",
    ))
    fig.update_layout(height=max(300, 60 + 16 * L1), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title=t(lang, "internals.fig.token"), yaxis_title=t(lang, "internals.fig.stream_after"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45 if T > 8 else 0)
    return fig


def residual_mean_figure(norms, labels: Sequence[str], lang: str) -> go.Figure:
    """Median and largest token norm per layer: the typical token vs the outliers."""
    n = to_numpy(norms)
    L1, _ = n.shape
    layers = [t(lang, "internals.fig.embed")] + _numbers(L1 - 1)
    biggest = n.argmax(axis=1)
    fig = go.Figure([
        go.Scatter(x=layers, y=np.median(n, axis=1), mode="lines+markers", name=t(lang, "internals.fig.median")),
        go.Scatter(x=layers, y=n.max(axis=1), mode="lines+markers", name=t(lang, "internals.fig.largest"),
                   text=[labels[i] for i in biggest], hovertemplate="%{x}: %{y:.1f} (%{text})<extra></extra>"),
    ])
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_type="log",
                      yaxis_title=t(lang, "internals.fig.norm_log"), xaxis_title=t(lang, "internals.fig.after_layer"),
                      legend=dict(orientation="h", y=1.1))
    fig.update_xaxes(type="category")
    return fig

