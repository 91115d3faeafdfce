"""Figures of the model-internals lab: pure functions, data in, go.Figure out.

The layers x heads grid is one PNG (270 maps of 64 x 64 cells would be a megabyte of JSON per rerun) with an
invisible marker on every tile that carries the hover text and makes the tile clickable.
"""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
from PIL import Image

from ..labs.internals_facts import Entropy, HeadLine
from ..labs.internals_passes import Ablation, LogitLens, head_labels, head_name, layer_labels
from .heatmap import heatmap, to_numpy, unique_labels

HEAD_COLORS = pc.qualitative.Plotly + pc.qualitative.Dark24
_TILE_MIN_PX = 36
_GAP_PX = 3


def _numbers(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def _blues(values: np.ndarray) -> np.ndarray:
    """(…) in [0, 1] -> (…, 3) uint8 RGB along plotly's Blues scale."""
    stops = [pc.unlabel_rgb(c) if c.startswith("rgb") else pc.hex_to_rgb(c) for c in pc.sequential.Blues]
    stops = np.array(stops, dtype=float)  # (n, 3)
    pos = np.clip(values, 0, 1) * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - lo)[..., None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).round().astype(np.uint8)


def _png_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def grid_figure(patterns, labels: Sequence[str], entropy: Entropy | None = None,
                selected: tuple[int, int] | None = None, causal: bool = False) -> go.Figure:
    """Every head's attention map: layers left to right, heads top to bottom, each tile a (query x key) map with
    the first token at its top-left. ``selected`` (layer, head) gets a red frame. In a causal model the first
    token can only read itself, so its row is left out of the hover's "strongest link"."""
    p = to_numpy(patterns)  # (L, H, T, S)
    L, H, T, S = p.shape
    scale = max(1, math.ceil(_TILE_MIN_PX / max(T, S)))
    th, tw = T * scale, S * scale
    step_x, step_y = tw + _GAP_PX, th + _GAP_PX
    canvas = np.full((H * step_y - _GAP_PX, L * step_x - _GAP_PX, 3), 255, dtype=np.uint8)
    tiles = _blues(np.repeat(np.repeat(p, scale, axis=2), scale, axis=3))  # (L, H, th, tw, 3)
    for layer in range(L):
        for head in range(H):
            y, x = head * step_y, layer * step_x
            canvas[y:y + th, x:x + tw] = tiles[layer, head]
    cx = [layer * step_x + tw / 2 for layer in range(L) for _ in range(H)]
    cy = [head * step_y + th / 2 for _ in range(L) for head in range(H)]
    hover = []
    for layer in range(L):
        for head in range(H):
            skip = 1 if causal and T > 1 else 0
            q, k = np.unravel_index(np.argmax(p[layer, head, skip:]), (T - skip, S))
            q += skip
            text = (f"layer {layer}, head {head}<br>strongest link: {labels[q]} → {labels[k]} "
                    f"({p[layer, head, q, k]:.2f})")
            if entropy is not None:
                text += f"<br>entropy {float(entropy.normalized[layer, head]):.2f} (0 sharp, 1 uniform)"
            hover.append(text + "<br><i>click to zoom</i>")
    fig = go.Figure([
        go.Image(source=_png_uri(canvas), x0=0, dx=1, y0=0, dy=1, hoverinfo="skip"),
        go.Scatter(x=cx, y=cy, mode="markers", marker=dict(size=4, opacity=0.01, color="#000"),
                   customdata=[[layer, head] for layer in range(L) for head in range(H)],
                   hovertext=hover, hoverinfo="text", showlegend=False, name="heads"),
    ])
    if selected is not None:
        layer, head = selected
        fig.add_shape(type="rect", x0=layer * step_x - 1.5, x1=layer * step_x + tw + 0.5, y0=head * step_y - 1.5,
                      y1=head * step_y + th + 0.5, line=dict(color="#d62728", width=2))
    every = max(1, math.ceil(L / 30))
    fig.update_xaxes(tickvals=[layer * step_x + tw / 2 for layer in range(0, L, every)],
                     ticktext=[str(layer) for layer in range(0, L, every)], title="layer", showgrid=False,
                     zeroline=False)
    fig.update_yaxes(tickvals=[head * step_y + th / 2 for head in range(H)], ticktext=[str(h) for h in range(H)],
                     title="head", showgrid=False, zeroline=False)
    # The picture keeps its aspect ratio, so size the figure for the ~1000 px wide plot of the app's wide layout
    # instead of leaving blank bands above and below it.
    aspect = canvas.shape[0] / canvas.shape[1]
    fig.update_layout(height=int(min(760, max(220, 70 + 1000 * aspect))), margin=dict(l=10, r=10, t=10, b=10),
                      plot_bgcolor="white", clickmode="event+select", dragmode=False, hovermode="closest",
                      hoverdistance=40)  # small markers: the nearest tile centre wins, whatever the zoom
    return fig


def zoom_figure(pattern, labels: Sequence[str], layer: int, head: int) -> go.Figure:
    """One head's attention map with the tokens on both axes."""
    T = len(labels)
    return heatmap(pattern, labels, labels, title=f"layer {layer}, head {head}", colorscale="Blues", zmin=0, zmax=1,
                   show_values=T <= 10, height=min(760, max(320, 80 + 18 * T)))


def head_view_figure(lines: Sequence[HeadLine], labels: Sequence[str], heads: Sequence[int], layer: int,
                     min_weight: float, query: int | None = None) -> go.Figure:
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
        traces.append(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=color, width=4),
                                 legendgroup=f"h{h}", name=f"head {h}"))  # the legend's swatch, drawn solid
        for b, (lo, hi) in enumerate(bins):
            sel = [ln for ln in lines if ln.head == h and lo <= ln.weight < hi]
            xs, ys = [], []
            for ln in sel:
                xs += [0, 1, None]
                ys += [-ln.query, -ln.key, None]
            traces.append(go.Scatter(
                x=xs or [None], y=ys or [None], mode="lines", line=dict(color=color, width=1 + 1.5 * b),
                opacity=0.25 + 0.22 * b, hoverinfo="skip", legendgroup=f"h{h}", name=f"head {h}",
                showlegend=False,
            ))
    traces.append(go.Scatter(x=[0] * T, y=y, mode="text", text=shown, textposition="middle left",
                             hoverinfo="skip", showlegend=False))
    traces.append(go.Scatter(x=[1] * T, y=y, mode="text", text=shown, textposition="middle right",
                             hoverinfo="skip", showlegend=False))
    fig = go.Figure(traces)
    fig.update_xaxes(range=[-0.6, 1.6], tickvals=[0, 1], ticktext=["query (attending)", "key (attended to)"],
                     showgrid=False, zeroline=False, side="top")
    fig.update_yaxes(visible=False, range=[-T + 0.5, 0.5])
    fig.update_layout(height=max(300, 60 + 20 * T), margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white",
                      legend=dict(title=f"layer {layer}, weights ≥ {min_weight:.2f}", itemclick="toggle"))
    return fig


def _after_name(heads: Sequence[tuple[int, int]]) -> str:
    if not heads:
        return "after (nothing zeroed)"
    if len(heads) <= 4:
        return f"after (zeroed: {', '.join(map(head_name, heads))})"
    return f"after ({len(heads)} heads zeroed)"


def ablation_bars(ab: Ablation) -> go.Figure:
    """Before and after side by side for every bar label."""
    names = ab.bar_labels
    shown = [n if len(n) <= 40 else n[:37] + "…" for n in unique_labels(names)]
    fig = go.Figure([
        go.Bar(x=shown, y=ab.before, name="before (intact model)", marker_color="#1f77b4",
               hovertemplate="%{x}<br>before: %{y:.4f}<extra></extra>"),
        go.Bar(x=shown, y=ab.after, name=_after_name(ab.heads),
               marker_color="#ff7f0e", hovertemplate="%{x}<br>after: %{y:.4f}<extra></extra>"),
    ])
    fig.update_layout(barmode="group", yaxis_title=ab.value_name, xaxis_title=(
        "candidate next token" if ab.value_name.startswith("probability") else "comparison sentence"),
        height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(type="category", tickangle=-30 if len(names) > 6 else 0)
    return fig


def pattern_change_figure(ab: Ablation) -> go.Figure:
    """Mean |Δ attention weight| of every head (layers x heads); the zeroed heads are framed."""
    change = to_numpy(ab.pattern_change)  # (L, H)
    L, H = change.shape
    fig = heatmap(change.T, _numbers(L), head_labels(H), x_title="layer", y_title="head", colorscale="Oranges",
                  zmin=0, height=max(240, 60 + 22 * H), value_format=".4f")
    for layer, head in ab.heads:
        fig.add_shape(type="rect", x0=layer - 0.5, x1=layer + 0.5, y0=head - 0.5, y1=head + 0.5,
                      line=dict(color="#d62728", width=2))
    fig.update_traces(hovertemplate="%{y}, layer %{x}<br>mean |Δ weight|: %{text}<extra></extra>")
    return fig


def logit_lens_figure(lens: LogitLens, input_labels: Sequence[str]) -> go.Figure:
    """Rows: the residual stream after each layer; columns: positions (the input token there); cells: the top
    next-token prediction read from that layer, coloured by its probability."""
    probs = to_numpy(lens.probs)
    L1, T = probs.shape
    x = unique_labels(input_labels)
    text = [[t if len(t) <= 10 else t[:9] + "…" for t in row] for row in lens.tokens]
    fig = go.Figure(go.Heatmap(
        z=probs, x=x, y=lens.layers, text=text, customdata=np.array(lens.tokens, dtype=object),
        texttemplate="%{text}" if T <= 24 else None, textfont=dict(size=10), colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title="p(top)"),
        hovertemplate="after %{y}<br>position: %{x}<br>top next token: %{customdata}<br>p = %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(height=max(360, 60 + 20 * L1), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title="input token at the position (prediction is for the token after it)",
                      yaxis_title="residual stream read after")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45 if T > 8 else 0)
    return fig


def residual_norm_figure(norms, labels: Sequence[str]) -> go.Figure:
    """‖x‖ of every token after the embeddings and after every layer, on a log colour scale (a few tokens grow
    far larger than the rest)."""
    n = to_numpy(norms)  # (L + 1, T)
    L1, T = n.shape
    fig = go.Figure(go.Heatmap(
        z=np.log10(np.maximum(n, 1e-6)), x=unique_labels(labels), y=layer_labels(L1 - 1, with_embed=True),
        customdata=n, colorscale="Viridis", colorbar=dict(title="log10 ‖x‖"),
        hovertemplate="after %{y}<br>token: %{x}<br>‖x‖ = %{customdata:.1f}<extra></extra>",
    ))
    fig.update_layout(height=max(300, 60 + 16 * L1), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title="token", yaxis_title="residual stream after")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45 if T > 8 else 0)
    return fig


def residual_mean_figure(norms, labels: Sequence[str]) -> go.Figure:
    """Median and largest token norm per layer: the typical token vs the outliers."""
    n = to_numpy(norms)
    L1, _ = n.shape
    layers = ["embed"] + _numbers(L1 - 1)
    biggest = n.argmax(axis=1)
    fig = go.Figure([
        go.Scatter(x=layers, y=np.median(n, axis=1), mode="lines+markers", name="median token"),
        go.Scatter(x=layers, y=n.max(axis=1), mode="lines+markers", name="largest token",
                   text=[labels[i] for i in biggest], hovertemplate="%{x}: %{y:.1f} (%{text})<extra></extra>"),
    ])
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_type="log",
                      yaxis_title="‖x‖ (log scale)", xaxis_title="residual stream after layer",
                      legend=dict(orientation="h", y=1.1))
    fig.update_xaxes(type="category")
    return fig


def entropy_figure(entropy: Entropy) -> go.Figure:
    """Normalised attention entropy of every head: 0 = all weight on one key, 1 = spread evenly."""
    e = to_numpy(entropy.normalized)  # (L, H)
    L, H = e.shape
    fig = heatmap(e.T, _numbers(L), head_labels(H), x_title="layer", y_title="head", colorscale="RdBu",
                  zmin=0, zmax=1, height=max(240, 60 + 22 * H), value_format=".2f")
    nats = to_numpy(entropy.nats).T
    fig.update_traces(customdata=nats, hovertemplate="%{y}, layer %{x}<br>normalised entropy %{text}<br>"
                                                     "%{customdata:.2f} nats<extra></extra>")
    return fig
