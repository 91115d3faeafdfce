"""Figures and the table of the post-training lab's LoRA tab, drawn from its results only (explorer.labs.
posttraining_lora's LoraCounts and LoraStep): trainable parameters against the rank, the model states of full
fine-tuning and LoRA side by side, the fine-tune's loss curve."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from ..i18n import t
from ..sizing import GB

LORA = "#4c78a8"
FULL = "#e4572e"
STATE_COLOURS = {"weights": "#4c78a8", "gradients": "#f58518", "optimizer": "#54a24b"}
MARGIN = dict(l=10, r=10, t=50, b=10)
HEIGHT = 320


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=HEIGHT, margin=MARGIN,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return fig


def trainable_figure(counts: Any, lang: str) -> go.Figure:
    """LoRA's trainable parameters at every rank (they grow linearly with r) under the full model's, on a log
    axis; the chosen rank marked."""
    ranks = [row.rank for row in counts.curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ranks, y=[row.lora.trainable for row in counts.curve], mode="lines",
                             name=t(lang, "posttraining_lora.fig.lora", targets=", ".join(counts.targets)),
                             line=dict(color=LORA)))
    fig.add_trace(go.Scatter(x=[ranks[0], ranks[-1]], y=[counts.full.trainable] * 2, mode="lines",
                             name=t(lang, "posttraining_lora.fig.full"), line=dict(color=FULL, dash="dash")))
    fig.add_trace(go.Scatter(x=[counts.rank], y=[counts.chosen.trainable], mode="markers", marker=dict(size=11,
                             color=LORA), name=t(lang, "posttraining_lora.fig.chosen", r=counts.rank)))
    fig.update_yaxes(type="log")
    return _layout(fig, t(lang, "posttraining_lora.fig.trainable_title", model=counts.preset),
                   t(lang, "posttraining_lora.fig.rank"), t(lang, "posttraining_lora.fig.params"))


def memory_figure(counts: Any, lang: str) -> go.Figure:
    """The model states (GB) of full fine-tuning and of LoRA at the chosen rank, stacked by what holds them."""
    bars = [t(lang, "posttraining_lora.fig.full"), t(lang, "posttraining_lora.fig.lora_r", r=counts.rank)]
    fig = go.Figure()
    for state, colour in STATE_COLOURS.items():
        values = [getattr(counts.full, state) / GB, getattr(counts.chosen, state) / GB]
        fig.add_trace(go.Bar(x=bars, y=values, name=t(lang, f"posttraining_lora.state.{state}"),
                             marker_color=colour))
    fig.update_layout(barmode="stack")
    return _layout(fig, t(lang, "posttraining_lora.fig.memory_title", model=counts.preset), "",
                   t(lang, "posttraining_lora.fig.gb"))


def count_table(counts: Any, lang: str) -> list[dict[str, Any]]:
    """One row per rank of the table, and full fine-tuning last: exact parameters, share, bytes."""
    head = lambda key: t(lang, f"posttraining_lora.table.{key}")  # noqa: E731
    rows = []
    for row in counts.table:
        rows.append({head("method"): t(lang, "posttraining_lora.fig.lora_r", r=row.rank),
                     head("trainable"): row.lora.trainable, head("share"): round(row.share(counts.full), 4),
                     head("optimizer"): round(row.lora.optimizer / GB, 4),
                     head("states"): round(row.lora.total / GB, 3)})
    full = counts.full
    rows.append({head("method"): t(lang, "posttraining_lora.fig.full"), head("trainable"): full.trainable,
                 head("share"): 100.0, head("optimizer"): round(full.optimizer / GB, 4),
                 head("states"): round(full.total / GB, 3)})
    return rows


def loss_figure(steps: Sequence[Any], total_steps: int, lang: str) -> go.Figure:
    """The masked SFT loss of each update's batch (before the update)."""
    trained = [s for s in steps if s.phase == "train"]
    fig = go.Figure(go.Scatter(x=[s.step for s in trained], y=[s.loss for s in trained], mode="lines+markers",
                               name=t(lang, "posttraining_lora.fig.loss"), line=dict(color=LORA)))
    fig.update_xaxes(range=[0, max(total_steps, 1) + 0.5])
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, t(lang, "posttraining_lora.fig.loss_title"), t(lang, "posttraining_lora.fig.step"),
                   t(lang, "posttraining_lora.fig.loss"))


def answers_table(prompts: Sequence[str], before: Sequence[str], after: Sequence[str] | None,
                  lang: str) -> list[dict[str, str]]:
    """Held-out prompts with the base model's answer and the adapted model's (escaped: a model's text)."""
    head = lambda key: t(lang, f"posttraining_lora.answers.{key}")  # noqa: E731
    rows = []
    for i, prompt in enumerate(prompts):
        rows.append({head("prompt"): prompt, head("before"): before[i] if i < len(before) else "",
                     head("after"): (after[i] if after is not None and i < len(after) else "…")})
    return rows

