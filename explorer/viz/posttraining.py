"""Figures every post-training tab draws the same way: the loss of a short background run (SFT, LoRA, DPO), step by
step, so the tabs' curves read alike. A tab's own figures live in ``explorer/viz/posttraining_<tab>.py``."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..i18n import t

RUN = "#1f77b4"
REFERENCE = "#7f7f7f"


def run_loss_figure(steps: Sequence[int], losses: Sequence[float], *, lang: str, title: str,
                    total_steps: int | None = None, reference: float | None = None,
                    reference_name: str | None = None) -> go.Figure:
    """``losses[i]`` measured at update ``steps[i]``; the x axis spans the whole run from its start, so a run in
    progress shows how far it has come. ``reference`` (a dashed line: the loss before any update, a uniform guess)
    is what the curve is read against."""
    fig = go.Figure(go.Scatter(x=list(steps), y=list(losses), mode="lines+markers", marker=dict(size=5),
                               name=t(lang, "posttraining.fig.loss"), line=dict(color=RUN)))
    end = max(total_steps or 0, max(steps, default=0), 1)
    if reference is not None:
        fig.add_trace(go.Scatter(x=[0, end], y=[reference, reference], mode="lines",
                                 line=dict(color=REFERENCE, dash="dash"),
                                 name=reference_name or t(lang, "posttraining.fig.reference")))
    fig.update_xaxes(range=[0, end], title_text=t(lang, "posttraining.fig.step"))
    fig.update_yaxes(rangemode="tozero", title_text=t(lang, "posttraining.fig.loss"))
    fig.update_layout(title=title, height=300, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))
    return fig
