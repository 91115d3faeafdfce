"""Figures of the post-training lab's ``losses`` tab: per-token CE and KL of a chosen and a rejected answer, and the
DPO run's implicit-reward margin and KL to the reference, update by update."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import t
from ..labs.posttraining_losses import DPOStep, LossesView

CHOSEN = "#2ca02c"
REJECTED = "#d62728"
KL = "#9467bd"
MARGIN = "#1f77b4"


def _w(lang: str, key: str, **params) -> str:
    return t(lang, f"posttraining_losses.fig.{key}", **params)


def token_terms_figure(view: LossesView, lang: str) -> go.Figure:
    """Top: CE = −log π per answer token; bottom: exact KL(π ‖ π_ref) at that position. Chosen left, rejected
    right; the x axis is the answer's tokens (a token repeated keeps its own place)."""
    fig = make_subplots(rows=2, cols=2, shared_xaxes="columns", vertical_spacing=0.12, horizontal_spacing=0.06,
                        subplot_titles=(_w(lang, "chosen", total=-view.chosen.seq_logp),
                                        _w(lang, "rejected", total=-view.rejected.seq_logp), "", ""))
    for col, (answer, colour) in enumerate(((view.chosen, CHOSEN), (view.rejected, REJECTED)), start=1):
        x = [f"{i}·{label}" for i, label in enumerate(answer.labels)]
        fig.add_trace(go.Bar(x=x, y=answer.ce.tolist(), marker_color=colour, name=_w(lang, "ce"), showlegend=False,
                             hovertemplate=_w(lang, "ce_hover", token="%{x}", ce="%{y:.3f}") + "<extra></extra>"),
                      row=1, col=col)
        fig.add_trace(go.Bar(x=x, y=answer.kl_exact.tolist(), marker_color=KL, name=_w(lang, "kl"), showlegend=False,
                             hovertemplate=_w(lang, "kl_hover", token="%{x}", kl="%{y:.4f}") + "<extra></extra>"),
                      row=2, col=col)
    fig.update_yaxes(title_text=_w(lang, "ce"), row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text=_w(lang, "kl"), row=2, col=1, rangemode="tozero")
    fig.update_layout(title=_w(lang, "tokens_title"), height=420, margin=dict(l=10, r=10, t=70, b=10),
                      bargap=0.25)
    return fig


def dpo_run_figure(steps: Sequence[DPOStep], total_steps: int, lang: str, title: str) -> go.Figure:
    """Left: the implicit rewards of the chosen and rejected answers and their margin, averaged over the pairs;
    right: the mean KL(π ‖ π_ref) per answer token. Update 0 is before any update (π = π_ref: everything is 0)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(_w(lang, "margin_title"), _w(lang, "kl_title")))
    x = [s.step for s in steps]
    for name, values, colour, dash in (
            (_w(lang, "margin"), [s.margin for s in steps], MARGIN, None),
            (_w(lang, "chosen_reward"), [s.chosen_reward for s in steps], CHOSEN, "dot"),
            (_w(lang, "rejected_reward"), [s.rejected_reward for s in steps], REJECTED, "dot")):
        fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=name, marker=dict(size=5),
                                 line=dict(color=colour, dash=dash)), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[s.kl for s in steps], mode="lines+markers", name=_w(lang, "kl"),
                             marker=dict(size=5), line=dict(color=KL)), row=1, col=2)
    end = max(total_steps, max(x, default=0), 1)
    fig.update_xaxes(range=[0, end], title_text=t(lang, "posttraining.fig.step"))
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(title=title, height=320, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0, xanchor="left"))
    return fig
