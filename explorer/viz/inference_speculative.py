"""Figures of the inference lab's speculative-decoding tab, drawn from explorer.labs.inference_speculative's result
only: the text round by round (accepted, rejected and the target's own tokens as coloured chips), tokens per round,
the speed of both runs, and tokens per target forward measured beside the model (1 - α^(k+1)) / (1 - α).

Token labels come from the student's prompt and the model's text: every one goes through html.escape (the chips
are HTML, plotly reads a subset of HTML in its strings)."""
from __future__ import annotations

import html

import plotly.graph_objects as go

from ..i18n import t
from ..labs.inference_speculative import SpeculativeResult

ACCEPTED = "#2e9e4f"
ACCEPTED_BG = "#d9f2e1"
REJECTED = "#d0443e"
REJECTED_BG = "#fbe1df"
TARGET = "#3b6fb6"
TARGET_BG = "#dde8f7"
PLAIN = "#8c8c8c"


def _chip(label: str, title: str, color: str, background: str, *, struck: bool = False) -> str:
    line = "line-through" if struck else "none"
    return (f'<span title="{html.escape(title)}" style="background:{background};border-bottom:2px solid {color};'
            f'padding:1px 3px;margin:1px;border-radius:3px;font-family:monospace;white-space:pre;'
            f'text-decoration:{line}">{html.escape(label)}</span>')


def rounds_html(result: SpeculativeResult, lang: str) -> str:
    """The generated text as the rounds built it: per round, the accepted draft tokens (green), the rejected ones
    struck through (red), then the target's own token (blue); a thin bar separates the rounds (one target forward
    each). A line-break token ends its line, as in the text."""
    parts = []
    for i, r in enumerate(result.rounds):
        pieces = []
        for label in r.proposed[:r.accepted]:
            pieces.append(_chip(label, t(lang, "inference_speculative.chip.accepted", round=i + 1), ACCEPTED,
                                ACCEPTED_BG))
        for label in r.proposed[r.accepted:]:
            pieces.append(_chip(label, t(lang, "inference_speculative.chip.rejected", round=i + 1), REJECTED,
                                REJECTED_BG, struck=True))
        key = "bonus" if r.bonus else "target"
        pieces.append(_chip(r.target, t(lang, f"inference_speculative.chip.{key}", round=i + 1), TARGET, TARGET_BG))
        parts.append("".join(pieces))
        if r.target.endswith("↵"):
            parts.append("<br>")
    sep = f'<span style="border-left:2px solid {PLAIN};margin:0 3px"></span>'
    return f'<div style="line-height:2.0;font-size:0.95rem">{sep.join(parts)}</div>'


def legend_html(lang: str) -> str:
    return " ".join([
        _chip(t(lang, "inference_speculative.legend.accepted"), "", ACCEPTED, ACCEPTED_BG),
        _chip(t(lang, "inference_speculative.legend.rejected"), "", REJECTED, REJECTED_BG, struck=True),
        _chip(t(lang, "inference_speculative.legend.target"), "", TARGET, TARGET_BG),
    ])


def rounds_figure(result: SpeculativeResult, lang: str) -> go.Figure:
    """Stacked bars, one per round (one target forward): accepted draft tokens, the target's own token, rejected
    draft tokens (below zero: proposed and thrown away)."""
    x = list(range(1, len(result.rounds) + 1))
    accepted = [r.accepted for r in result.rounds]
    rejected = [-(len(r.proposed) - r.accepted) for r in result.rounds]
    hover = [html.escape(" ".join(r.proposed[:r.accepted] + (r.target,))) for r in result.rounds]
    hover_rejected = [html.escape(" ".join(r.proposed[r.accepted:])) for r in result.rounds]
    fig = go.Figure()
    fig.add_bar(x=x, y=accepted, name=t(lang, "inference_speculative.legend.accepted"), marker_color=ACCEPTED,
                customdata=hover, hovertemplate="%{customdata}<extra>%{y}</extra>")
    fig.add_bar(x=x, y=[1] * len(x), name=t(lang, "inference_speculative.legend.target"), marker_color=TARGET,
                customdata=hover, hovertemplate="%{customdata}<extra></extra>")
    fig.add_bar(x=x, y=rejected, name=t(lang, "inference_speculative.legend.rejected"), marker_color=REJECTED,
                customdata=hover_rejected, hovertemplate="%{customdata}<extra>%{y}</extra>")
    fig.update_layout(
        barmode="relative", height=300, margin=dict(l=10, r=10, t=50, b=10),
        title=t(lang, "inference_speculative.fig.rounds_title", n=len(result.spec.tokens), forwards=len(x),
                k=result.k),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))
    fig.update_xaxes(title_text=t(lang, "inference_speculative.fig.round"))
    fig.update_yaxes(title_text=t(lang, "inference_speculative.fig.tokens"), zeroline=True)
    return fig


def speed_figure(result: SpeculativeResult, lang: str) -> go.Figure:
    """Tokens per second of both runs (measured in the same call) and tokens per target forward: measured, and
    the model's value at the measured acceptance rate for k = 1 .. 8."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=(
        t(lang, "inference_speculative.fig.speed_sub"),
        t(lang, "inference_speculative.fig.model_title", alpha=100 * (result.alpha or 0.0))))
    names = [t(lang, "inference_speculative.fig.plain"), t(lang, "inference_speculative.fig.spec")]
    speeds = [result.plain.tokens_per_second, result.spec.tokens_per_second]
    fig.add_bar(x=names, y=speeds, marker_color=[PLAIN, ACCEPTED], text=[f"{v:.1f}" for v in speeds],
                textposition="auto", showlegend=False, hovertemplate="%{x}: %{y:.2f}<extra></extra>", row=1, col=1)
    curve = result.model_curve()
    fig.add_scatter(x=[k for k, _ in curve], y=[v for _, v in curve], mode="lines+markers", line_color=TARGET,
                    name=t(lang, "inference_speculative.fig.model_line"), row=1, col=2)
    fig.add_scatter(x=[result.k], y=[result.spec.tokens_per_forward], mode="markers", marker=dict(
        size=14, color=ACCEPTED, symbol="diamond"), name=t(lang, "inference_speculative.fig.measured"), row=1, col=2)
    fig.update_yaxes(title_text=t(lang, "inference_speculative.fig.tokens_per_s"), rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text=t(lang, "inference_speculative.fig.tokens_per_forward"), rangemode="tozero", row=1,
                     col=2)
    fig.update_xaxes(title_text="k", dtick=1, row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=80, b=10),
                      title=t(lang, "inference_speculative.fig.speed_title", x=result.speedup,
                              plain=result.plain.tokens_per_second, spec=result.spec.tokens_per_second),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=1, xanchor="right"))
    return fig
