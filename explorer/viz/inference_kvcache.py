"""Figures of the KV-cache tab: cache bytes over the context for each attention layout, a paged and a contiguous
server's memory over time, and their pools block by block at one step.

Pure functions of explorer.labs.inference_kvcache's results; nothing is counted here."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..i18n import t
from ..labs.inference_kvcache import KVCacheResult, PagingResult
from ..paging import FREE, Snapshot, Trace
from .inference import LAYOUT_COLORS, tab_layout

SYSTEM_COLORS = {"paged": "#4C78A8", "contiguous": "#E45756"}
OWNER_COLORS = qualitative.Set3 + qualitative.Pastel1  # 21 distinct fills; request ids cycle through them
GRID_COLUMNS = 16


def layout_name(lang: str, layout: str) -> str:
    return t(lang, f"inference_kvcache.layout.{layout}")


def memory_figure(result: KVCacheResult, lang: str, *, batch: int, dtype: str) -> go.Figure:
    """Bytes of the cache of ``batch`` sequences against tokens of context, one line per layout (the model's own
    drawn thick), and the weights in the same format as a dashed line."""
    fig = go.Figure()
    for row in result.rows:
        name = layout_name(lang, row.layout) + (t(lang, "inference_kvcache.viz.own") if row.own else "")
        fig.add_trace(go.Scatter(
            x=result.contexts, y=result.curves[row.layout], name=name, mode="lines",
            line=dict(color=LAYOUT_COLORS[row.layout], width=5 if row.own else 2),
            hovertemplate=t(lang, "inference_kvcache.viz.memory_hover") + "<extra>" + name + "</extra>"))
    if result.weights is not None:
        fig.add_trace(go.Scatter(
            x=[result.contexts[0], result.contexts[-1]], y=[result.weights, result.weights], mode="lines",
            name=t(lang, "inference_kvcache.viz.weights", dtype=dtype), line=dict(color="#555", dash="dash"),
            hovertemplate="%{y:.4s}B<extra></extra>"))
    fig.update_layout(title=t(lang, "inference_kvcache.viz.memory_title", model=model_label(lang, result.name),
                              batch=batch, dtype=dtype),
                      xaxis_title=t(lang, "inference_kvcache.viz.context_axis"),
                      yaxis_title=t(lang, "inference_kvcache.viz.bytes_axis"))
    fig.update_yaxes(tickformat="~s", ticksuffix="B", rangemode="tozero")
    fig.update_xaxes(tickformat="~s", rangemode="tozero")
    return tab_layout(fig)


def model_label(lang: str, name: str) -> str:
    return t(lang, "inference_kvcache.custom_model") if name == "custom" else name


def paging_figure(result: PagingResult, lang: str, *, at_step: int | None = None) -> go.Figure:
    """Top: token slots held and slots holding a token, paged and contiguous, against the pool's size. Bottom:
    requests running at once. A vertical line marks the step whose pools are drawn below."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    for trace in (result.paged, result.contiguous):
        color, system = SYSTEM_COLORS[trace.system], t(lang, f"inference_kvcache.system.{trace.system}")
        steps = np.arange(trace.steps)
        fig.add_trace(go.Scatter(
            x=steps, y=trace.reserved, mode="lines", line=dict(color=color, width=1, dash="dot"),
            name=t(lang, "inference_kvcache.viz.reserved", system=system), legendgroup=trace.system,
            hovertemplate=t(lang, "inference_kvcache.viz.slots_hover")), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=steps, y=trace.used, mode="lines", line=dict(color=color, width=2.5),
            name=t(lang, "inference_kvcache.viz.used", system=system), legendgroup=trace.system,
            hovertemplate=t(lang, "inference_kvcache.viz.slots_hover")), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=steps, y=trace.running, mode="lines", line=dict(color=color, width=2, shape="hv"),
            name=t(lang, "inference_kvcache.viz.running", system=system), legendgroup=trace.system,
            showlegend=False, hovertemplate=t(lang, "inference_kvcache.viz.running_hover")), row=2, col=1)
    last = max(result.paged.steps, result.contiguous.steps)
    capacity = result.paged.capacity
    fig.add_trace(go.Scatter(x=[0, last], y=[capacity, capacity], mode="lines", line=dict(color="#555", dash="dash"),
                             name=t(lang, "inference_kvcache.viz.capacity"), hovertemplate="%{y:,}<extra></extra>"),
                  row=1, col=1)
    if at_step is not None:
        fig.add_vline(x=at_step, line=dict(color="#333", width=1))
    fig.update_layout(title=t(lang, "inference_kvcache.viz.paging_title"))
    fig.update_yaxes(title_text=t(lang, "inference_kvcache.viz.slots_axis"), rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text=t(lang, "inference_kvcache.viz.running_axis"), rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=t(lang, "inference_kvcache.viz.step_axis"), row=2, col=1)
    return tab_layout(fig, height=460)


def _pale(color: str, keep: float = 0.35) -> str:
    """``color`` ('rgb(r,g,b)' or '#rrggbb') mixed with white, keeping ``keep`` of it."""
    if color.startswith("#"):
        rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [int(float(v)) for v in color[color.index("(") + 1:color.index(")")].split(",")[:3]]
    r, g, b = (round(255 - keep * (255 - v)) for v in rgb)
    return f"rgb({r},{g},{b})"


def pool_figure(snapshot: Snapshot, trace: Trace, block_size: int, lang: str) -> go.Figure:
    """The pool at one step, block by block, in rows of GRID_COLUMNS: each block coloured by the request owning it
    (grey: free; pale: held but still empty), labelled with the request and its place in the request's block
    table, and, when not full, how many of its slots hold a token."""
    n = len(snapshot.owner)
    rows = -(-n // GRID_COLUMNS)
    pad = rows * GRID_COLUMNS - n
    owner = np.concatenate([snapshot.owner, np.full(pad, FREE)]).reshape(rows, GRID_COLUMNS)
    logical = np.concatenate([snapshot.logical, np.full(pad, -1)]).reshape(rows, GRID_COLUMNS)
    filled = np.concatenate([snapshot.filled, np.zeros(pad, int)]).reshape(rows, GRID_COLUMNS)
    # a block held but still empty in a pale shade of its owner's colour: the waste is what the eye should find
    shade = np.where(filled == 0, len(OWNER_COLORS), 0)
    # + 0.5: the middle of a colour's band in the stepped scale, never on the edge between two colours
    z = np.where(owner == FREE, np.nan, owner % len(OWNER_COLORS) + shade + 0.5).astype(float)
    colors = list(OWNER_COLORS) + [_pale(c) for c in OWNER_COLORS]
    steps = len(colors)
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / steps, color], [(i + 1) / steps, color]]
    text = np.full(owner.shape, "", dtype=object)
    hover = np.full(owner.shape, "", dtype=object)
    for r in range(rows):
        for c in range(GRID_COLUMNS):
            block = r * GRID_COLUMNS + c
            if block >= n:
                continue
            if owner[r, c] == FREE:
                hover[r, c] = t(lang, "inference_kvcache.viz.free_block", block=block)
                continue
            short = t(lang, "inference_kvcache.viz.block_label", rid=int(owner[r, c]), logical=int(logical[r, c]))
            text[r, c] = short if filled[r, c] == block_size else f"{short}<br>{filled[r, c]}/{block_size}"
            hover[r, c] = t(lang, "inference_kvcache.viz.block_hover", block=block, rid=int(owner[r, c]),
                            logical=int(logical[r, c]), filled=int(filled[r, c]), size=block_size)
    fig = go.Figure(go.Heatmap(
        z=z, zmin=0, zmax=steps, colorscale=scale, showscale=False, xgap=2, ygap=2, text=text,
        texttemplate="%{text}", textfont=dict(size=10), customdata=hover, hovertemplate="%{customdata}<extra></extra>"))
    system = t(lang, f"inference_kvcache.system.{trace.system}")
    fig.update_layout(title=t(lang, "inference_kvcache.viz.pool_title", system=system, step=snapshot.step),
                      plot_bgcolor="#f4f4f4", margin=dict(l=10, r=10, t=60, b=10),
                      height=max(160, 60 + 34 * rows))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig
