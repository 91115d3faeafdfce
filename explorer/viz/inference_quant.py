"""Figures of the quantization tab: a weight matrix's histogram before and after, the model's bytes per format, the
outliers that make one scale per tensor too coarse, the error of every matrix, and the KL divergence per token.

Pure functions of explorer.labs.inference_quant's results; nothing is computed here."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..i18n import Msg, render, t
from ..labs.inference_quant import MATRICES, Evaluation, MatrixView, MemoryRow, Outliers, Predictions
from ..safe_text import escape_html
from .inference import tab_layout

BEFORE, AFTER = "#4C78A8", "#E45756"
MATRIX_COLORS = dict(zip(MATRICES, ("#4C78A8", "#72B7B2", "#54A24B", "#EECA3B", "#F58518", "#E45756", "#B279A2")))
PART_COLORS = {"linear": "#4C78A8", "embedding": "#F58518", "norms": "#B279A2"}


def matrix_name(lang: str, matrix: str) -> str:
    return t(lang, f"inference_quant.matrix.{matrix}")


def histogram_figure(view: MatrixView, fmt: Msg, lang: str) -> go.Figure:
    """Counts of the weights per bin, before (bars) and after quantize→dequantize (bars in front): at low bits
    the after-bars collapse onto the grid's few values. A log count axis keeps the rare large weights visible."""
    centers = (view.edges[:-1] + view.edges[1:]) / 2
    width = float(view.edges[1] - view.edges[0])
    fig = go.Figure()
    for counts, name, color, opacity in ((view.before, t(lang, "inference_quant.viz.before"), BEFORE, 0.55),
                                         (view.after, t(lang, "inference_quant.viz.after", fmt=render(fmt, lang)),
                                          AFTER, 0.75)):
        shown = np.where(counts > 0, counts, np.nan)  # an empty bin draws nothing (log axis)
        fig.add_trace(go.Bar(x=centers, y=shown, width=width, name=escape_html(name), marker_color=color,
                             opacity=opacity, hovertemplate=t(lang, "inference_quant.viz.hist_hover")
                             + "<extra>" + escape_html(name) + "</extra>"))
    fig.update_layout(
        barmode="overlay", bargap=0,
        title=t(lang, "inference_quant.viz.hist_title", layer=view.layer, matrix=matrix_name(lang, view.matrix),
                rows=view.shape[0], cols=view.shape[1]),
        xaxis_title=t(lang, "inference_quant.viz.weight"), yaxis_title=t(lang, "inference_quant.viz.count"),
        yaxis_type="log")
    return tab_layout(fig)


def memory_figure(rows: Sequence[MemoryRow], lang: str) -> go.Figure:
    """The whole model's weights per format, in MB, stacked by part; the student's format outlined."""
    labels = [escape_html(render(r.label, lang)) + (" ◀" if r.chosen else "") for r in rows]
    fig = go.Figure()
    for part in ("linear", "embedding", "norms"):
        values = [getattr(r, part) / 1e6 for r in rows]
        name = t(lang, f"inference_quant.viz.part_{part}")
        fig.add_trace(go.Bar(y=labels, x=values, orientation="h", name=name, marker_color=PART_COLORS[part],
                             hovertemplate="%{x:,.1f} MB<extra>" + escape_html(name) + "</extra>"))
    totals = [r.total / 1e6 for r in rows]
    fig.add_trace(go.Scatter(y=labels, x=totals, mode="text", text=[f"{x:,.1f} MB" for x in totals],
                             textposition="middle right", showlegend=False, hoverinfo="skip"))
    fig.update_layout(barmode="stack", title=t(lang, "inference_quant.viz.memory_title"),
                      xaxis_title="MB", xaxis_range=[0, max(totals) * 1.22], yaxis_autorange="reversed")
    fig = tab_layout(fig, height=360)
    fig.update_layout(hovermode="closest")
    return fig


def outlier_figure(found: Outliers, lang: str) -> go.Figure:
    """max |w| of every row (output channel) of the matrix with the worst spread and of a typical one."""
    fig = go.Figure()
    for m, color, key in ((found.worst, AFTER, "worst"), (found.typical, BEFORE, "typical")):
        name = t(lang, f"inference_quant.viz.{key}", layer=m.layer, matrix=matrix_name(lang, m.matrix),
                 spread=m.spread)
        fig.add_trace(go.Scatter(x=np.arange(len(m.row_absmax)), y=m.row_absmax, mode="lines", name=escape_html(name),
                                 line=dict(color=color, width=1.5),
                                 hovertemplate=t(lang, "inference_quant.viz.row_hover")
                                 + "<extra>" + escape_html(name) + "</extra>"))
    fig.update_layout(title=t(lang, "inference_quant.viz.outlier_title"),
                      xaxis_title=t(lang, "inference_quant.viz.row"), yaxis_title="max |w|")
    fig = tab_layout(fig, height=340)
    fig.update_layout(hovermode="closest")
    return fig


def layer_error_figure(e: Evaluation, lang: str) -> go.Figure:
    """Relative RMS error of every quantized matrix against its layer, one line per kind of matrix."""
    layers = np.array(e.layers)
    matrices = np.array(e.matrices)
    fig = go.Figure()
    for matrix in MATRICES:
        pick = matrices == matrix
        name = matrix_name(lang, matrix)
        fig.add_trace(go.Scatter(x=layers[pick], y=e.layer_errors[pick], mode="lines+markers", name=escape_html(name),
                                 line=dict(color=MATRIX_COLORS[matrix], width=1.5), marker=dict(size=5),
                                 hovertemplate=t(lang, "inference_quant.viz.error_hover")
                                 + "<extra>" + escape_html(name) + "</extra>"))
    fig.update_layout(title=t(lang, "inference_quant.viz.error_title"),
                      xaxis_title=t(lang, "inference_quant.viz.layer"),
                      yaxis_title=t(lang, "inference_quant.viz.rel_rms"), yaxis_rangemode="tozero")
    fig = tab_layout(fig, height=360)
    fig.update_layout(hovermode="closest")
    return fig


def kl_figure(p: Predictions, lang: str) -> go.Figure:
    """KL(p_fp32 ‖ p_quant) of the next-token distribution after each token of the text."""
    x = [f"{i} {escape_html(label)}" for i, label in enumerate(p.labels)]
    fig = go.Figure(go.Bar(x=x, y=p.kl, marker_color=AFTER,
                           hovertemplate=t(lang, "inference_quant.viz.kl_hover") + "<extra></extra>"))
    fig.update_layout(title=t(lang, "inference_quant.viz.kl_title"), xaxis_title=t(lang, "inference_quant.viz.token"),
                      yaxis_title=t(lang, "inference_quant.viz.kl_axis"), xaxis_tickangle=-60)
    fig = tab_layout(fig, height=340, legend_top=False)
    fig.update_layout(hovermode="closest")
    return fig
