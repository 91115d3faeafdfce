"""Figures of the training lab, drawn from its results only: the steps a training yields (explorer.labs.training's
TrainStep: plain numbers, a sample text, one head's attention map) and the schedule and batch it shows before a
run. Nothing here computes a model.

Token labels come from the student's own text (a pasted corpus) or from a model's output, so every label goes
through ``_plain`` before plotly reads it: plotly's strings understand a subset of HTML.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ..i18n import t
from .heatmap import heatmap, unique_labels

TRAIN = "#4c78a8"
VAL = "#e4572e"
UNIFORM = "rgba(120, 120, 120, 0.8)"
RUN_COLOURS = ("#4c78a8", "#e4572e", "#54a24b", "#b279a2")
MARGIN = dict(l=10, r=10, t=50, b=10)


def _plain(text: str) -> str:
    """``text`` as plotly shows it literally (only &, < and > need escaping for plotly)."""
    return html.escape(text, quote=False)


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 320) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=height, margin=MARGIN,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return fig


def loss_figure(steps: Sequence[Any], *, vocab_size: int, lang: str, total_steps: int | None = None) -> go.Figure:
    """Training loss at every step, validation loss where it was measured, and ln V: what a uniform guess over the
    V tokens costs, where a fresh model starts."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[s.step for s in steps], y=[s.loss for s in steps], mode="lines",
                             name=t(lang, "training.fig.train_loss"), line=dict(color=TRAIN)))
    measured = [s for s in steps if s.val_loss is not None]
    fig.add_trace(go.Scatter(x=[s.step for s in measured], y=[s.val_loss for s in measured], mode="lines+markers",
                             name=t(lang, "training.fig.val_loss"), line=dict(color=VAL)))
    ln_v = math.log(vocab_size)
    end = max(total_steps or 0, steps[-1].step if steps else 0, 1)
    fig.add_trace(go.Scatter(x=[0, end], y=[ln_v, ln_v], mode="lines", line=dict(color=UNIFORM, dash="dash"),
                             name=t(lang, "training.fig.uniform", v=vocab_size, ln_v=ln_v)))
    fig.update_xaxes(range=[0, end])
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, t(lang, "training.fig.loss_title"), t(lang, "training.fig.step"),
                   t(lang, "training.fig.loss"))


def schedule_figure(lrs: Sequence[float], *, lang: str, done: int | None = None, warmup: int = 0) -> go.Figure:
    """The learning rate at every update, known before training starts; the updates done so far are marked."""
    fig = go.Figure(go.Scatter(x=list(range(len(lrs))), y=list(lrs), mode="lines",
                               name=t(lang, "training.fig.lr"), line=dict(color=TRAIN)))
    if warmup > 0:
        fig.add_vrect(x0=0, x1=min(warmup, max(len(lrs) - 1, 0)), fillcolor="rgba(228, 87, 46, 0.12)", line_width=0,
                      annotation_text=t(lang, "training.fig.warmup"), annotation_position="top left")
    if done is not None and 0 < done <= len(lrs):
        fig.add_trace(go.Scatter(x=[done - 1], y=[lrs[done - 1]], mode="markers", marker=dict(size=10, color=VAL),
                                 name=t(lang, "training.fig.now")))
    fig.update_yaxes(exponentformat="e", rangemode="tozero")
    return _layout(fig, t(lang, "training.fig.lr_title"), t(lang, "training.fig.step"), t(lang, "training.fig.lr"),
                   height=280)


def _norm_series(steps: Sequence[Any]) -> dict[str, list[tuple[int, float]]]:
    """Each layer's gradient norm over the steps, named as the library names it (or 'layer i')."""
    series: dict[str, list[tuple[int, float]]] = {}
    for s in steps:
        norms = s.grad_norms
        items = norms.items() if isinstance(norms, Mapping) else enumerate(norms or ())
        for name, value in items:
            series.setdefault(str(name), []).append((s.step, float(value)))
    return series


def _layer_name(name: str, lang: str) -> str:
    """The library's group names ('embed', 'blocks.0', 'final') as a student reads them."""
    if name.startswith("blocks.") and name[7:].isdigit():
        return t(lang, "training.fig.layer", n=int(name[7:]) + 1)
    if name in ("embed", "final"):
        return t(lang, f"training.fig.group_{name}")
    return _plain(name)


def grad_norm_figure(steps: Sequence[Any], *, lang: str, clip: float | None = None) -> go.Figure:
    """The gradient's norm per layer at every step (log scale: early steps are orders of magnitude larger); the
    clipping threshold, which bounds the norm of the whole gradient, as a dashed line."""
    fig = go.Figure()
    for name, points in _norm_series(steps).items():
        label = _layer_name(name, lang)
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=label))
    if clip and steps:
        fig.add_trace(go.Scatter(x=[steps[0].step, steps[-1].step], y=[clip, clip], mode="lines",
                                 line=dict(color=UNIFORM, dash="dash"), name=t(lang, "training.fig.clip", clip=clip)))
    fig.update_yaxes(type="log")
    return _layout(fig, t(lang, "training.fig.grad_title"), t(lang, "training.fig.step"),
                   t(lang, "training.fig.grad_norm"))


def batch_figure(inputs: Sequence[str], targets: Sequence[str], losses: Sequence[float], *, vocab_size: int,
                 lang: str) -> go.Figure:
    """One training sequence: at each position the model reads the input token and must guess the next one (the
    target, the input shifted by one); the bar is that guess's cross-entropy −ln p(target)."""
    x = unique_labels([f"{_plain(i)} → {_plain(o)}" for i, o in zip(inputs, targets)])
    hover = [t(lang, "training.fig.batch_hover", input=_plain(i), target=_plain(o), ce=ce, p=math.exp(-ce))
             for i, o, ce in zip(inputs, targets, losses)]
    fig = go.Figure(go.Bar(x=x, y=list(losses), marker_color=TRAIN, hovertext=hover, hoverinfo="text",
                           name=t(lang, "training.fig.ce")))
    mean = sum(losses) / len(losses) if losses else 0.0
    ln_v = math.log(vocab_size)
    for y, colour, key in ((mean, VAL, "training.fig.mean_ce"), (ln_v, UNIFORM, "training.fig.uniform_short")):
        fig.add_trace(go.Scatter(x=[x[0], x[-1]] if x else [], y=[y, y], mode="lines", line=dict(color=colour,
                                 dash="dash"), name=t(lang, key, value=y)))
    fig.update_xaxes(type="category", tickangle=-45)
    return _layout(fig, t(lang, "training.fig.batch_title"), t(lang, "training.fig.position"),
                   t(lang, "training.fig.ce"), height=340)


def attention_figure(matrix, labels: Sequence[str], *, step: int, layer: int, head: int, lang: str) -> go.Figure:
    """One head's attention at a checkpoint: row = the position attending, column = the position attended to."""
    shown = [_plain(label) for label in labels]
    return heatmap(matrix, shown, shown, title=t(lang, "training.fig.attention_title", step=step, layer=layer + 1,
                                                  head=head + 1),
                   x_title=t(lang, "training.fig.key"), y_title=t(lang, "training.fig.query"), zmin=0.0, zmax=1.0,
                   value_name=t(lang, "training.fig.weight"), lang=lang)


def compare_figure(runs: Sequence[tuple[str, Sequence[Any]]], *, lang: str) -> go.Figure:
    """Two (or more) finished runs' training loss on one chart (validation dashed), named by what differs."""
    fig = go.Figure()
    for (name, steps), colour in zip(runs, RUN_COLOURS):
        fig.add_trace(go.Scatter(x=[s.step for s in steps], y=[s.loss for s in steps], mode="lines",
                                 name=t(lang, "training.fig.run_train", run=_plain(name)), line=dict(color=colour)))
        measured = [s for s in steps if s.val_loss is not None]
        if measured:
            fig.add_trace(go.Scatter(x=[s.step for s in measured], y=[s.val_loss for s in measured],
                                     mode="lines+markers", line=dict(color=colour, dash="dot"),
                                     name=t(lang, "training.fig.run_val", run=_plain(name))))
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, t(lang, "training.fig.compare_title"), t(lang, "training.fig.step"),
                   t(lang, "training.fig.loss"), height=360)
