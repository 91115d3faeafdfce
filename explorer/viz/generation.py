"""Figures of the generation lab, drawn from its results only: explorer.generation's Steps (numbers and numpy
arrays) and explorer.labs.generation's CacheComparison.

Token labels are the model's output (or the student's prompt), so every one goes through ``_plain`` before plotly
reads it: plotly's strings understand a subset of HTML (<b>, <br>, <a href>).
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..generation import Step
from ..i18n import Msg, t
from ..labs.generation import CacheComparison
from .heatmap import heatmap, unique_labels

CHOSEN = "#e4572e"
KEPT = "#4c78a8"
MODEL = "rgba(120, 120, 120, 0.35)"


def quoted(label: str) -> str:
    return f"“{label}”"


def _plain(text: str) -> str:
    """``text`` as plotly shows it literally. Only &, < and > need escaping: plotly decodes &amp; &lt; &gt; and
    numeric entities but not &quot; or &#x27;, which html.escape's default would leave on screen."""
    return html.escape(text, quote=False)


def candidate_bars(step: Step, lang: str) -> go.Figure:
    """The top candidates for one step: probability after the settings (the chosen token highlighted, tokens the
    settings removed at 0) over the model's own probability in grey."""
    cands = step.candidates
    labels = unique_labels([_plain(quoted(c.label)) for c in cands])
    colours = [CHOSEN if c.token_id == step.token_id else (KEPT if c.prob > 0 else "#bbbbbb") for c in cands]
    hover = ["<br>".join([_plain(quoted(c.label)), t(lang, "generation.fig.hover_after", p=c.prob),
                          t(lang, "generation.fig.hover_model", p=c.model_prob)]
                         + ([t(lang, "generation.fig.hover_chosen")] if c.token_id == step.token_id else [])
                         + ([] if c.prob > 0 else [t(lang, "generation.fig.hover_removed")])) for c in cands]
    fig = go.Figure([
        go.Bar(y=labels, x=[c.model_prob for c in cands], orientation="h",
               name=t(lang, "generation.fig.model_alone_softmax"), marker=dict(color=MODEL), hoverinfo="skip"),
        go.Bar(y=labels, x=[c.prob for c in cands], orientation="h",
               name=t(lang, "generation.fig.after_settings_sampled"), marker=dict(color=colours),
               text=[_bar_text(c, lang) for c in cands], textposition="outside",
               # a value beside its bar keeps its font size (projector text is taller than a thin bar) rather than
               # shrink to the bar's thickness, or vanish where the projector forbids shrinking
               constraintext="none", hovertext=hover, hoverinfo="text"),
    ])
    fig.update_layout(
        # The title at the figure's top and the legend just above the bars, with room between them for a legend
        # that wraps to two rows in half a laptop's width at projector size: plotly centres a title in the top
        # margin by default, which put it on the legend's first row.
        title=dict(text=t(lang, "generation.fig.candidates_title", n=step.index + 1,
                          token=_plain(quoted(step.label)), p=step.prob),
                   y=1.0, yref="container", yanchor="top", pad=dict(t=8)),
        barmode="overlay", xaxis_title=t(lang, "generation.fig.probability"),
        yaxis_title=t(lang, "generation.fig.candidate_token"),
        height=max(350, 160 + 26 * len(cands)), margin=dict(l=10, r=10, t=115, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(range=[0, 1.12])
    return fig


def _bar_text(c, lang: str) -> str:
    if c.prob <= 0:
        return t(lang, "generation.fig.removed")
    return f"{c.prob:.2f}" if c.prob >= 0.005 else "<0.01"


def _hover_for(step: Step, label: str, lang: str, n: int = 5) -> str:
    lines = [t(lang, "generation.fig.hover_token", n=step.index + 1, token=_plain(quoted(label))),
             t(lang, "generation.fig.hover_p", p=step.prob, model_p=step.model_prob),
             t(lang, "generation.fig.hover_entropy", h=step.entropy), t(lang, "generation.fig.hover_top")]
    for c in step.candidates[:n]:
        mark = " ←" if c.token_id == step.token_id else ""
        lines.append(f"  {_plain(quoted(c.label))} {c.prob:.3f}{mark}")
    return "<br>".join(lines)


def timeline(steps: Sequence[Step], labels: Sequence[str] | None = None, *, lang: str,
             per_row: int = 12) -> go.Figure:
    """The whole run as text: one cell per generated token, coloured by the probability it was picked with (red =
    a surprising pick, green = the obvious one); hover shows the candidates. ``labels``: one per step (e.g.
    Generation.generated_labels(), which names the pieces of a character), else each step's own label."""
    n = len(steps)
    labels = list(labels) if labels is not None else [s.label for s in steps]
    rows = max(1, math.ceil(n / per_row))
    z = np.full((rows, per_row), np.nan)
    text = np.full((rows, per_row), "", dtype=object)
    hover = np.full((rows, per_row), "", dtype=object)
    for i, s in enumerate(steps):
        r, c = divmod(i, per_row)
        z[r, c] = s.prob
        lab = labels[i]
        text[r, c] = _plain(lab if len(lab) <= 10 else lab[:9] + "…")
        hover[r, c] = _hover_for(s, lab, lang)
    y = [t(lang, "generation.fig.timeline_row", first=r * per_row + 1, last=min(n, (r + 1) * per_row))
         for r in range(rows)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(per_row)), y=y, text=text, texttemplate="%{text}", textfont=dict(size=13),
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", colorscale="RdYlGn", zmin=0, zmax=1,
        xgap=3, ygap=3, hoverongaps=False, colorbar=dict(title=t(lang, "generation.fig.p_of_pick")),
    ))
    fig.update_layout(title=t(lang, "generation.fig.timeline_title"),
                      height=110 + 46 * rows, margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(autorange="reversed", type="category", title=t(lang, "generation.fig.generated_text"))
    return fig


def entropy_line(steps: Sequence[Step], labels: Sequence[str] | None = None, *, lang: str) -> go.Figure:
    """How unsure the model was at every step: entropy of its own distribution and of the one sampled from."""
    x = unique_labels([_plain(quoted(lab)) for lab in (labels if labels is not None else [s.label for s in steps])])
    fig = go.Figure([
        go.Scatter(x=x, y=[s.model_entropy for s in steps], mode="lines+markers",
                   name=t(lang, "generation.fig.model_alone")),
        go.Scatter(x=x, y=[s.entropy for s in steps], mode="lines+markers",
                   name=t(lang, "generation.fig.after_settings")),
    ])
    fig.update_layout(title=t(lang, "generation.fig.entropy_title"),
                      xaxis_title=t(lang, "generation.fig.generated_token"),
                      yaxis_title=t(lang, "generation.fig.entropy_bits"), height=320,
                      margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(type="category", tickangle=-45)
    return fig


def attention_over_context(step: Step, context_labels: Sequence[str], *, lang: str,
                           head: int | None = None) -> go.Figure:
    """Every layer's attention from the newest token of the context (the query that picked ``step``'s token) over
    the whole context: rows are layers, columns the tokens it can see. ``head=None`` averages the heads."""
    if step.attention is None:
        raise ValueError(Msg("generation.fig.no_attention"))
    attn = step.attention.astype(float)  # (n_layer, n_head, S)
    rows = attn.mean(axis=1) if head is None else attn[:, head, :]
    who = head_labels(lang)(head)
    query = _plain(context_labels[-1]) if context_labels else ""
    fig = heatmap(
        rows, x_labels=[_plain(lab) for lab in context_labels],
        y_labels=[t(lang, "generation.fig.layer_n", i=i) for i in range(rows.shape[0])],
        title=t(lang, "generation.fig.attention_title", query=quoted(query), token=_plain(quoted(step.label)),
                who=who),
        x_title=t(lang, "generation.fig.context_token"), y_title=t(lang, "generation.fig.layer"), colorscale="Blues",
        zmin=0,
        height=max(300, 60 + 16 * rows.shape[0]),
    )
    fig.update_layout(margin=dict(t=70))  # room for the two-line title
    return fig


def head_labels(lang: str):
    """Names of the attention view's choices: None averages the heads, a number is one head."""
    return lambda head: t(lang, "generation.heads.mean") if head is None else t(lang, "generation.heads.one", h=head)


def speed_chart(comparison: CacheComparison, labels: Sequence[str], *, lang: str) -> go.Figure:
    """Milliseconds per generated token, with and without the KV cache, on the same tokens."""
    x = unique_labels([_plain(quoted(lab)) for lab in labels])
    fig = go.Figure()
    for r in (comparison.on, comparison.off):
        name = t(lang, "generation.fig.cache_on" if r.use_cache else "generation.fig.cache_off")
        fig.add_trace(go.Scatter(x=x[:len(r.seconds)], y=[1000 * sec for sec in r.seconds], mode="lines+markers",
                                 name=name))
    fig.update_layout(title=t(lang, "generation.fig.speed_title"),
                      xaxis_title=t(lang, "generation.fig.generated_token"),
                      yaxis_title=t(lang, "generation.fig.milliseconds"), height=340,
                      margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_xaxes(type="category", tickangle=-45)
    return fig
