"""Figures of the post-training lab's ``grpo`` tab: how each sampled answer's log-probability moved after the
updates, coloured by its group-relative advantage."""
from __future__ import annotations

import plotly.graph_objects as go

from ..i18n import t
from ..labs.posttraining_grpo import GRPOResult

UP = "#2ca02c"
DOWN = "#d62728"
FLAT = "#7f7f7f"


def _w(lang: str, key: str, **params) -> str:
    return t(lang, f"posttraining_grpo.fig.{key}", **params)


def change_figure(result: GRPOResult, lang: str) -> go.Figure:
    """One bar per answer: log π(o | q) after the updates minus before. Answers with Â > 0 should rise (green),
    those with Â < 0 fall (red); Â = 0 (grey) is only pulled by the KL penalty."""
    rows = [_w(lang, "row", i=i + 1, reward=a.reward, adv=a.advantage) for i, a in enumerate(result.answers)]
    colours = [UP if a.advantage > 0 else DOWN if a.advantage < 0 else FLAT for a in result.answers]
    fig = go.Figure(go.Bar(
        y=rows, x=[a.change for a in result.answers], orientation="h", marker_color=colours,
        customdata=[[a.text[:80], a.logp_before, a.logp_after] for a in result.answers],
        hovertemplate=_w(lang, "hover", text="%{customdata[0]}", before="%{customdata[1]:.2f}",
                         after="%{customdata[2]:.2f}", change="%{x:+.2f}") + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text=_w(lang, "change_axis"), zeroline=True, zerolinewidth=2)
    fig.update_layout(title=_w(lang, "change_title", prompt=result.prompt, n=len(result.answers)),
                      height=120 + 32 * len(result.answers), margin=dict(l=10, r=10, t=50, b=10))
    return fig
