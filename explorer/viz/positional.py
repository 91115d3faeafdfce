"""Figures of the positional-encoding lab: pure functions, data in, go.Figure out, every word in ``lang``."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..i18n import render, t
from ..labs.positional import Alibi, PermutationResult, RopeDistance, RopeRotation
from .grid import panel_grid
from .heatmap import heatmap

WAVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _words(lang: str, name: str, **params) -> str:
    return t(lang, f"positional.viz.{name}", **params)


def table_figure(table: np.ndarray, pos_labels: Sequence[str], *, title: str, lang: str) -> go.Figure:
    """The pos x dim table of a positional encoding."""
    bound = float(np.abs(table).max()) or 1.0
    return heatmap(table, [str(i) for i in range(table.shape[1])], pos_labels, title=title,
                   x_title=_words(lang, "dimension"), y_title=_words(lang, "position"), colorscale="RdBu_r",
                   zmin=-bound, zmax=bound, height=380, value_format=".3f", value_name=_words(lang, "pe_value"),
                   lang=lang)


def waves_figure(table: np.ndarray, dims: Sequence[int], pos_labels: Sequence[str], lang: str) -> go.Figure:
    """Chosen dimensions of the table as functions of the position: fast waves first, slow ones later."""
    positions = list(range(table.shape[0]))
    data = [go.Scatter(
        x=positions, y=table[:, d], mode="lines+markers",
        name=_words(lang, "wave_name", d=d, fn="sin" if d % 2 == 0 else "cos"),
        line=dict(color=WAVE_COLOURS[k % len(WAVE_COLOURS)]), customdata=list(pos_labels),
        hovertemplate=_words(lang, "wave_hover", d=d, pos="%{customdata}", value="%{y:.3f}") + "<extra></extra>",
    ) for k, d in enumerate(dims)]
    return go.Figure(data=data, layout=dict(
        height=320, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=_words(lang, "waves_title")),
        xaxis=dict(title=dict(text=_words(lang, "position"))),
        yaxis=dict(title=dict(text=_words(lang, "pe_value")), range=[-1.1, 1.1]),
    ))


def similarity_figure(sim: np.ndarray, pos_labels: Sequence[str], *, title: str, lang: str) -> go.Figure:
    return heatmap(sim, pos_labels, pos_labels, title=title, x_title=_words(lang, "position_q"),
                   y_title=_words(lang, "position_p"), colorscale="RdBu_r", zmin=-1.0, zmax=1.0, height=420,
                   value_format=".2f", value_name=_words(lang, "cosine"), lang=lang)


def rope_rotation_figure(rot: RopeRotation, pos_labels: Sequence[str], lang: str) -> go.Figure:
    """The pair (x_i, x_{i+d/2}) of one vector at each position: a point turning around the circle."""
    circle = np.linspace(0, 2 * math.pi, 121)
    pts = rot.points
    n = len(pts)
    # spokes from the origin, one per position, in a single trace (None breaks the line)
    spokes_x = [v for p in pts for v in (0.0, float(p[0]), None)]
    spokes_y = [v for p in pts for v in (0.0, float(p[1]), None)]
    data = [
        go.Scatter(x=np.cos(circle), y=np.sin(circle), mode="lines", line=dict(color="#cccccc"),
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=spokes_x, y=spokes_y, mode="lines", line=dict(color="#9ecae1", width=1), hoverinfo="skip",
                   showlegend=False),
        go.Scatter(
            x=pts[:, 0], y=pts[:, 1], mode="markers+text", text=list(pos_labels[:n]), textposition="top center",
            marker=dict(size=10, color=list(range(n)), colorscale="Viridis",
                        colorbar=dict(title=dict(text=_words(lang, "position")))),
            customdata=np.degrees(np.arange(n) * rot.angle_per_position) % 360, showlegend=False,
            hovertemplate=_words(lang, "rotation_hover", pos="%{text}", angle="%{customdata:.1f}",
                                 point="(%{x:.3f}, %{y:.3f})") + "<extra></extra>",
        ),
    ]
    return go.Figure(data=data, layout=dict(
        height=440, margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text=_words(lang, "rotation_title", pair=rot.pair,
                               degrees=math.degrees(rot.angle_per_position))),
        xaxis=dict(title=dict(text=f"x[{rot.pair}]"), range=[-1.3, 1.3], zeroline=True),
        yaxis=dict(title=dict(text=f"x[{rot.pair} + d/2]"), range=[-1.3, 1.3], scaleanchor="x", zeroline=True),
    ))


def rope_distance_figure(curves: Sequence[RopeDistance], lang: str) -> go.Figure:
    """q . k after RoPE against the relative distance, one line per theta (and per kind of q, k)."""
    data = []
    hover = "m − n = %{x}<br>q·k / d = %{y:.3f}<extra></extra>"
    for k, rd in enumerate(curves):
        colour = WAVE_COLOURS[k % len(WAVE_COLOURS)]
        data.append(go.Scatter(x=rd.distance, y=rd.ones, mode="lines", name=_words(lang, "curve_ones", theta=rd.theta),
                               line=dict(color=colour), hovertemplate=hover))
        data.append(go.Scatter(x=rd.distance, y=rd.random, mode="lines",
                               name=_words(lang, "curve_random", theta=rd.theta), line=dict(color=colour, dash="dot"),
                               hovertemplate=hover))
    return go.Figure(data=data, layout=dict(
        height=360, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=_words(lang, "distance_title")),
        xaxis=dict(title=dict(text=_words(lang, "distance_axis"))), yaxis=dict(title=dict(text="q_m · k_n / d")),
        legend=dict(orientation="h", y=-0.25),
    ))


def _attention_axes(lang: str) -> dict:
    return dict(x_title=_words(lang, "key"), y_title=_words(lang, "query"), value_name=_words(lang, "weight"))


def alibi_figure(ab: Alibi, labels: Sequence[str], lang: str) -> go.Figure:
    """The bias ALiBi adds to each head's scores; grey cells are masked (a causal model)."""
    bias = ab.bias
    finite = bias[np.isfinite(bias)]
    low = float(finite.min()) if finite.size and finite.min() < 0 else -1.0
    titles = [_words(lang, "alibi_panel", head=h + 1, slope=s) for h, s in enumerate(ab.slopes)]
    return panel_grid(list(bias), [labels] * len(bias), [labels] * len(bias), titles,
                      title=_words(lang, "alibi_title"), colorscale="Reds_r", zmin=low, zmax=0.0,
                      **{**_attention_axes(lang), "value_name": _words(lang, "bias")})


def slopes_figure(ab: Alibi, lang: str) -> go.Figure:
    heads = [_words(lang, "head", head=h + 1) for h in range(len(ab.slopes))]
    return go.Figure(go.Bar(x=heads, y=ab.slopes, hovertemplate="%{x}: m = %{y:.5f}<extra></extra>"),
                     layout=dict(height=300, margin=dict(l=10, r=10, t=40, b=10),
                                 title=dict(text=render(ab.rule.title, lang)),
                                 yaxis=dict(title=dict(text=_words(lang, "slope")), type="log")))


def permutation_figure(res: PermutationResult, head: int, lang: str) -> go.Figure:
    """The sentence's attention, the shuffled sentence's, and the latter put back in the original order."""
    lab, shuf = list(res.labels), list(res.shuffled_labels)
    return panel_grid(
        [res.original[head], res.shuffled[head], res.unshuffled[head]], [lab, shuf, lab], [lab, shuf, lab],
        [_words(lang, "original"), _words(lang, "shuffled"), _words(lang, "put_back")], cols=3,
        title=_words(lang, "permutation_title", head=head + 1, diff=res.max_abs_diff), **_attention_axes(lang),
    )


def encodings_figure(patterns: dict[str, np.ndarray], labels: Sequence[str], head: int, lang: str) -> go.Figure:
    """The same sentence's attention (one head) under each positional encoding (``patterns`` by its name in
    explorer.config.POSITIONALS)."""
    names = list(patterns)
    return panel_grid([patterns[n][head] for n in names], [labels] * len(names), [labels] * len(names),
                      [t(lang, f"positional.encoding.{n}") for n in names], cols=len(names),
                      title=_words(lang, "effect_title", head=head + 1), **_attention_axes(lang))
