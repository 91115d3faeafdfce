"""Figures of the SFT tab: each token's cross-entropy, coloured by whether SFT's loss counts it, and the same
tokens as a row of coloured chips; drawn from explorer.sft's LossView only."""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from ..i18n import t
from ..safe_text import escape_html
from ..sft import LossView

COUNTED = "#e4572e"  # the answer: what SFT trains on
CONTEXT = "#9aa5b1"  # system prompt, question, role headers: read, never scored
COUNTED_BG = "rgba(228, 87, 46, 0.22)"
CONTEXT_BG = "rgba(154, 165, 177, 0.18)"


def token_loss_figure(view: LossView, labels: Sequence[str], *, lang: str) -> go.Figure:
    """One bar per predicted token (the first has no prediction): its cross-entropy -log p(token | before)."""
    fig = go.Figure()
    positions = range(1, len(view.losses))
    for counted, color, name in ((True, COUNTED, t(lang, "posttraining_sft.fig.counted")),
                                 (False, CONTEXT, t(lang, "posttraining_sft.fig.context"))):
        xs = [i for i in positions if view.tokens.in_loss[i] == counted]
        fig.add_trace(go.Bar(
            x=xs, y=[view.losses[i] for i in xs], name=name, marker_color=color,
            customdata=[[escape_html(labels[i])] for i in xs],
            hovertemplate=t(lang, "posttraining_sft.fig.hover") + "<extra></extra>"))
    # the two means are often close: the higher line's label above it, the lower one's below, never overlapping
    masked_on_top = view.masked >= view.unmasked
    for value, color, key, where in (
            (view.masked, COUNTED, "posttraining_sft.fig.masked_line", "top left" if masked_on_top else "bottom left"),
            (view.unmasked, CONTEXT, "posttraining_sft.fig.unmasked_line",
             "bottom left" if masked_on_top else "top left")):
        if math.isfinite(value):
            fig.add_hline(y=value, line=dict(color=color, dash="dash", width=1.5),
                          annotation_text=t(lang, key, loss=value), annotation_position=where,
                          annotation_font_color=color)
    shown = list(positions)
    fig.update_xaxes(tickmode="array", tickvals=shown, ticktext=[escape_html(labels[i]) for i in shown],
                     tickangle=-90, tickfont=dict(size=9), title_text=t(lang, "posttraining_sft.fig.token"))
    fig.update_yaxes(rangemode="tozero", title_text=t(lang, "posttraining_sft.fig.ce"))
    fig.update_layout(title=t(lang, "posttraining_sft.fig.title", n=view.n_counted, total=view.n_predicted),
                      barmode="overlay", bargap=0.15, height=330, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))
    return fig


def token_chips_html(labels: Sequence[str], in_loss: Sequence[bool], *, lang: str) -> str:
    """The conversation token by token, each chip coloured by whether the loss counts it; a line break token ends
    its line, as in the text."""
    chips = []
    for label, counted in zip(labels, in_loss):
        title = t(lang, "posttraining_sft.chip_counted" if counted else "posttraining_sft.chip_context")
        chips.append(f'<span title="{html.escape(title)}" style="background:{COUNTED_BG if counted else CONTEXT_BG};'
                     f'border-bottom:2px solid {COUNTED if counted else CONTEXT};padding:1px 3px;margin:1px;'
                     f'border-radius:3px;font-family:monospace;white-space:pre">{html.escape(label)}</span>')
        if label.endswith("↵"):
            chips.append("<br>")
    return f'<div style="line-height:1.9;font-size:0.9rem">{"".join(chips)}</div>'
