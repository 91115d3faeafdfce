"""The batching tab's figure: tokens per second of the engine by batch size (all requests together, and each one),
against the bound that reading the weights once per step puts on them. Pure: results in, figure out."""
from __future__ import annotations

import plotly.graph_objects as go

from ..i18n import t
from ..labs.inference_batching import BATCH_SIZES, BatchingResult, Roofline
from .inference import tab_layout


def throughput_figure(result: BatchingResult | None, bound: Roofline | None, lang: str) -> go.Figure:
    """Bars: total tokens/s at each batch size measured; line: tokens/s each request sees; dashed: batch ·
    bandwidth / bytes per step, what a step that only read the weights would give. Empty axes before a run."""
    fig = go.Figure()
    sizes = [str(b) for b in BATCH_SIZES]
    if result is not None:
        x = [str(p.batch) for p in result.points]
        fig.add_trace(go.Bar(x=x, y=[p.total_tokens_per_s for p in result.points], marker_color="#4C78A8",
                             name=t(lang, "inference_batching.viz.total"),
                             text=[f"{p.total_tokens_per_s:.1f}" for p in result.points], textposition="outside",
                             hovertemplate=t(lang, "inference_batching.viz.total_hover")))
        fig.add_trace(go.Scatter(x=x, y=[p.per_request_tokens_per_s for p in result.points], mode="lines+markers",
                                 marker_color="#F58518", name=t(lang, "inference_batching.viz.per_request"),
                                 hovertemplate=t(lang, "inference_batching.viz.per_request_hover")))
    if bound is not None:
        fig.add_trace(go.Scatter(x=sizes, y=[bound.ceiling(b) for b in BATCH_SIZES], mode="lines",
                                 line=dict(color="#555", dash="dash"), name=t(lang, "inference_batching.viz.bound"),
                                 hovertemplate=t(lang, "inference_batching.viz.bound_hover")))
    fig.update_layout(title=t(lang, "inference_batching.viz.title"),
                      xaxis_title=t(lang, "inference_batching.viz.batch_axis"),
                      yaxis_title=t(lang, "inference_batching.viz.tps_axis"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=sizes)
    if bound is not None:  # the bound grows with the batch far past the measured speeds: only a log axis shows both
        fig.update_yaxes(type="log", dtick=1)
    fig.update_layout(showlegend=True)  # even with the bound alone: the dashed line needs its name
    return tab_layout(fig)
