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


def candidate_bars(step: Step) -> go.Figure:
    """The top candidates for one step: probability after the settings (the chosen token highlighted, tokens the
    settings removed at 0) over the model's own probability in grey."""
    cands = step.candidates
    labels = unique_labels([_plain(quoted(c.label)) for c in cands])
    colours = [CHOSEN if c.token_id == step.token_id else (KEPT if c.prob > 0 else "#bbbbbb") for c in cands]
    hover = [f"{_plain(quoted(c.label))}<br>after the settings: {c.prob:.3f}<br>model alone: {c.model_prob:.3f}"
             + ("<br><b>chosen</b>" if c.token_id == step.token_id else "")
             + ("" if c.prob > 0 else "<br>removed by top-k / top-p / min-p") for c in cands]
    fig = go.Figure([
        go.Bar(y=labels, x=[c.model_prob for c in cands], orientation="h", name="model alone (softmax of logits)",
               marker=dict(color=MODEL), hoverinfo="skip"),
        go.Bar(y=labels, x=[c.prob for c in cands], orientation="h", name="after the settings (what is sampled)",
               marker=dict(color=colours), text=[_bar_text(c) for c in cands], textposition="outside",
               hovertext=hover, hoverinfo="text"),
    ])
    fig.update_layout(
        title=f"Token {step.index + 1}: picked {_plain(quoted(step.label))} with probability {step.prob:.2f}",
        barmode="overlay", xaxis_title="probability", yaxis_title="candidate next token",
        height=max(320, 130 + 26 * len(cands)), margin=dict(l=10, r=10, t=85, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(range=[0, 1.12])
    return fig


def _bar_text(c) -> str:
    if c.prob <= 0:
        return "removed"
    return f"{c.prob:.2f}" if c.prob >= 0.005 else "<0.01"


def _hover_for(step: Step, label: str, n: int = 5) -> str:
    lines = [f"token {step.index + 1}: <b>{_plain(quoted(label))}</b>",
             f"p = {step.prob:.3f} (model alone {step.model_prob:.3f})",
             f"entropy {step.entropy:.2f} bits", "top candidates:"]
    for c in step.candidates[:n]:
        mark = " ←" if c.token_id == step.token_id else ""
        lines.append(f"  {_plain(quoted(c.label))} {c.prob:.3f}{mark}")
    return "<br>".join(lines)


def timeline(steps: Sequence[Step], labels: Sequence[str] | None = None, *, per_row: int = 12) -> go.Figure:
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
        hover[r, c] = _hover_for(s, lab)
    y = [f"tokens {r * per_row + 1}–{min(n, (r + 1) * per_row)}" for r in range(rows)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(per_row)), y=y, text=text, texttemplate="%{text}", textfont=dict(size=13),
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", colorscale="RdYlGn", zmin=0, zmax=1,
        xgap=3, ygap=3, hoverongaps=False, colorbar=dict(title="p of the pick"),
    ))
    fig.update_layout(title="The run, token by token (colour = probability of the pick; hover for candidates)",
                      height=110 + 46 * rows, margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(autorange="reversed", type="category", title="generated text")
    return fig


def entropy_line(steps: Sequence[Step], labels: Sequence[str] | None = None) -> go.Figure:
    """How unsure the model was at every step: entropy of its own distribution and of the one sampled from."""
    x = unique_labels([_plain(quoted(lab)) for lab in (labels if labels is not None else [s.label for s in steps])])
    fig = go.Figure([
        go.Scatter(x=x, y=[s.model_entropy for s in steps], mode="lines+markers", name="model alone"),
        go.Scatter(x=x, y=[s.entropy for s in steps], mode="lines+markers", name="after the settings"),
    ])
    fig.update_layout(title="Uncertainty at each step: entropy H = −Σ p log₂ p", xaxis_title="generated token",
                      yaxis_title="entropy (bits)", height=320, margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(type="category", tickangle=-45)
    return fig


def attention_over_context(step: Step, context_labels: Sequence[str], *, head: int | None = None) -> go.Figure:
    """Every layer's attention from the newest token of the context (the query that picked ``step``'s token) over
    the whole context: rows are layers, columns the tokens it can see. ``head=None`` averages the heads."""
    if step.attention is None:
        raise ValueError("This run did not record attention (generate with attention=True).")
    attn = step.attention.astype(float)  # (n_layer, n_head, S)
    rows = attn.mean(axis=1) if head is None else attn[:, head, :]
    who = "average of the heads" if head is None else f"head {head}"
    query = _plain(context_labels[-1]) if context_labels else ""
    fig = heatmap(
        rows, x_labels=[_plain(lab) for lab in context_labels], y_labels=[f"layer {i}" for i in range(rows.shape[0])],
        title=f"Attention of {quoted(query)} over the context<br><sup>when picking {_plain(quoted(step.label))} · "
              f"{who}</sup>",
        x_title="context token (attended to)", y_title="layer", colorscale="Blues", zmin=0,
        height=max(300, 60 + 16 * rows.shape[0]),
    )
    fig.update_layout(margin=dict(t=70))  # room for the two-line title
    return fig


def speed_chart(comparison: CacheComparison, labels: Sequence[str]) -> go.Figure:
    """Milliseconds per generated token, with and without the KV cache, on the same tokens."""
    x = unique_labels([_plain(quoted(lab)) for lab in labels])
    fig = go.Figure()
    for r in (comparison.on, comparison.off):
        name = "KV cache on" if r.use_cache else "KV cache off (re-reads the whole text)"
        fig.add_trace(go.Scatter(x=x[:len(r.seconds)], y=[1000 * t for t in r.seconds], mode="lines+markers",
                                 name=name))
    fig.update_layout(title="Time per token (the first one also reads the prompt)", xaxis_title="generated token",
                      yaxis_title="milliseconds", height=340, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_xaxes(type="category", tickangle=-45)
    return fig
