"""Figures for the sizing lab: where the parameters live, models side by side, how size scales, memory, compute.

Pure functions: the lab's results (explorer.labs.sizing) in, ``go.Figure`` out; nothing is counted here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ..labs.sizing_panels import ScalingCurve
from ..i18n import render, t
from ..sizing import CHINCHILLA_TOKENS_PER_PARAM, GB, GROUPS, ModelStates, ParamBreakdown, human_count, human_gpu_memory
from ..safe_text import escape_html

GROUP_COLORS = {"embeddings": "#4C78A8", "attention": "#F58518", "ffn": "#54A24B", "norms": "#B279A2",
                "head": "#E45756"}


def group_label(lang: str, group: str) -> str:
    """A group of explorer.sizing.GROUPS in words (Embeddings, Attention, FFN, Norms, Output head)."""
    return t(lang, f"sizing.group.{group}")


def part_label(lang: str, name: str, stack: str = "") -> str:
    """A part of explorer.sizing ('self-attn W_Q') in words, with its stack in an encoder-decoder."""
    part = t(lang, f"sizing.part.{name}")
    return t(lang, "sizing.part_in_stack", stack=t(lang, f"sizing.stack.{stack}"), part=part) if stack else part


def breakdown_sunburst(b: ParamBreakdown, title: str = "", kind: str = "sunburst", lang: str = "en") -> go.Figure:
    """Total -> group (embeddings, attention, FFN, norms, head) -> part; every part at its share of the total.
    ``kind='treemap'`` draws the same hierarchy as nested rectangles."""
    ids, labels, parents, values, colors, hover = ["total"], [t(lang, "sizing.viz.total", n=human_count(b.total))], \
        [""], [b.total], ["#ffffff"], [t(lang, "sizing.viz.parameters", n=b.total)]
    two_stacks = b.cfg.arch == "encoder-decoder"
    for group in GROUPS:
        g_total = b.group_total(group)
        if not g_total:
            continue
        ids.append(group)
        labels.append(group_label(lang, group))
        parents.append("total")
        values.append(g_total)
        colors.append(GROUP_COLORS[group])
        hover.append(t(lang, "sizing.viz.group_hover", n=g_total, pct=100 * g_total / b.total))
        for p in b.parts:
            if p.group != group or not p.total:
                continue
            ids.append(f"{group}/{p.stack}/{p.name}")
            labels.append(part_label(lang, p.name, p.stack if two_stacks else ""))
            parents.append(group)
            values.append(p.total)
            colors.append(GROUP_COLORS[group])
            hover.append(f"{p.count:,} x {p.copies} = {p.total:,} ({100 * p.total / b.total:.1f}%)")
    trace_cls = go.Treemap if kind == "treemap" else go.Sunburst
    fig = go.Figure(trace_cls(
        ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
        marker=dict(colors=colors, line=dict(color="white", width=1)), customdata=hover,
        hovertemplate="<b>%{label}</b><br>%{customdata}<extra></extra>", textinfo="label+percent root",
    ))
    fig.update_layout(title=title or None, margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=460)
    return fig


def compare_bars(breakdowns: Mapping[str, ParamBreakdown], share: bool = False, lang: str = "en") -> go.Figure:
    """One stacked bar per model, split into embeddings / attention / FFN / norms / head; ``share`` draws each
    part as a percentage of its model (a log axis would distort stacked parts, so sizes stay linear)."""
    names = [escape_html(str(render(n, lang))) for n in breakdowns]  # a pasted config.json names its own model
    totals = [b.total for b in breakdowns.values()]
    fig = go.Figure()
    for group in GROUPS:
        values = [b.group_total(group) for b in breakdowns.values()]
        if not any(values):
            continue
        ys = [100 * v / t for v, t in zip(values, totals)] if share else values
        label = group_label(lang, group)
        fig.add_bar(x=names, y=ys, name=label, marker_color=GROUP_COLORS[group],
                    customdata=[f"{human_count(v)} ({100 * v / n:.1f}%)" for v, n in zip(values, totals)],
                    hovertemplate="%{x}<br>" + label + ": %{customdata}<extra></extra>")
    fig.add_scatter(x=names, y=[100] * len(names) if share else totals, mode="text",
                    text=[human_count(t) for t in totals], textposition="top center", showlegend=False,
                    hoverinfo="skip")
    fig.update_layout(barmode="stack", height=440, margin=dict(l=10, r=10, t=30, b=10),
                      legend_title_text=t(lang, "sizing.viz.part"))
    fig.update_yaxes(title_text=t(lang, "sizing.viz.share_axis") if share else t(lang, "sizing.viz.params_axis"))
    fig.update_xaxes(title_text=t(lang, "sizing.viz.model_axis"))
    return fig


def scaling_curves(curves: Sequence[ScalingCurve], lang: str = "en") -> go.Figure:
    """Exact total against d_model for several depths, with the 12·L·d² + V·d shortcut dashed beside each curve."""
    fig = go.Figure()
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#B279A2", "#72B7B2"]
    for i, curve in enumerate(curves):
        color, layers, xs = palette[i % len(palette)], curve.n_layer, list(curve.d_models)
        fig.add_scatter(x=xs, y=list(curve.exact), mode="lines+markers",
                        name=t(lang, "sizing.viz.layers_exact", n=layers),
                        line=dict(color=color), customdata=[human_count(v) for v in curve.exact],
                        hovertemplate="d_model %{x}: %{customdata}<extra></extra>")
        fig.add_scatter(x=xs, y=list(curve.approx), mode="lines", name=t(lang, "sizing.viz.layers_shortcut", n=layers),
                        line=dict(color=color, dash="dot"), customdata=[human_count(v) for v in curve.approx],
                        hovertemplate="d_model %{x}: %{customdata} (" + t(lang, "sizing.viz.shortcut")
                        + ")<extra></extra>")
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=30, b=10))
    fig.update_xaxes(title_text=t(lang, "sizing.viz.d_model_axis"))
    fig.update_yaxes(title_text=t(lang, "sizing.viz.params_axis"), type="log")
    return fig


def _stacked_gb(fig: go.Figure, gpu_bytes: float | None, height: int, y_title: str, x_title: str, lang: str
                ) -> go.Figure:
    """Stack the bars of a memory figure in GB, with the GPU's capacity as a dashed line."""
    if gpu_bytes:  # the bars are in decimal GB, so the card's GiB are drawn at their decimal height
        fig.add_hline(y=gpu_bytes / GB, line_dash="dash", line_color="#E45756",
                      annotation_text=t(lang, "sizing.viz.gpu_line", memory=human_gpu_memory(gpu_bytes)),
                      annotation_position="top right")
    fig.update_layout(barmode="stack", height=height, margin=dict(l=10, r=10, t=30, b=10))
    fig.update_yaxes(title_text=y_title)
    fig.update_xaxes(title_text=x_title)
    return fig


def memory_by_zero_stage(states: Sequence[ModelStates], activations: float, gpu_bytes: float | None = None,
                         lang: str = "en") -> go.Figure:
    """Per-GPU memory for ZeRO stages 0..3 stacked as weights, gradients, optimizer states and activations,
    with the GPU's capacity as a line."""
    x = [t(lang, "sizing.viz.stage", i=i) for i in range(len(states))]
    fig = go.Figure()
    for key, color in (("weights", "#4C78A8"), ("gradients", "#F58518"), ("optimizer", "#54A24B")):
        name = t(lang, f"sizing.viz.state.{key}")
        ys = [getattr(s, key) / GB for s in states]
        fig.add_bar(x=x, y=ys, name=name, marker_color=color, hovertemplate="%{x}: %{y:.3g} GB<extra>" + name
                    + "</extra>")
    acts = t(lang, "sizing.viz.state.activations")
    fig.add_bar(x=x, y=[activations / GB] * len(states), name=acts, marker_color="#B279A2",
                hovertemplate="%{x}: %{y:.3g} GB<extra>" + acts + "</extra>")
    return _stacked_gb(fig, gpu_bytes, 400, t(lang, "sizing.viz.gb_per_gpu"), t(lang, "sizing.viz.zero_axis"), lang)


def inference_memory_bars(weights: Mapping[str, float], kv_cache: float | None, gpu_bytes: float | None = None,
                          lang: str = "en") -> go.Figure:
    """Weights at each precision, with the KV cache stacked on top."""
    names = list(weights)
    fig = go.Figure()
    w = t(lang, "sizing.viz.weights")
    fig.add_bar(x=names, y=[weights[n] / GB for n in names], name=w, marker_color="#4C78A8",
                hovertemplate="%{x} " + w + ": %{y:.3g} GB<extra></extra>")
    if kv_cache:
        kv = t(lang, "sizing.viz.kv_cache")
        fig.add_bar(x=names, y=[kv_cache / GB] * len(names), name=kv, marker_color="#F58518",
                    hovertemplate=kv + ": %{y:.3g} GB<extra></extra>")
    return _stacked_gb(fig, gpu_bytes, 380, "GB", t(lang, "sizing.viz.precision_axis"), lang)


def tokens_per_parameter(points: Mapping[str, tuple[float, float]], highlight: str | None = None, lang: str = "en"
                         ) -> go.Figure:
    """Training tokens against parameters for real models, with Chinchilla's tokens per parameter as a line."""
    names = list(points)
    params = [points[n][0] for n in names]
    tokens = [points[n][1] for n in names]
    lo, hi = min(params + [1e8]) / 2, max(params + [1e11]) * 2
    fig = go.Figure()
    k = CHINCHILLA_TOKENS_PER_PARAM
    fig.add_scatter(x=[lo, hi], y=[k * lo, k * hi], mode="lines", name=t(lang, "sizing.viz.chinchilla_line", k=k),
                    line=dict(dash="dash", color="#888"), hoverinfo="skip")
    # Only the chosen model is labelled in place: a dozen GPT-3 sizes share 300B tokens and would overlap.
    fig.add_scatter(x=params, y=tokens, mode="markers+text", text=[n if n == highlight else "" for n in names],
                    textposition="top center", name=t(lang, "sizing.viz.models"), hovertext=names,
                    marker=dict(size=[14 if n == highlight else 9 for n in names],
                                color=["#E45756" if n == highlight else "#4C78A8" for n in names]),
                    customdata=[t(lang, "sizing.viz.token_hover", params=human_count(p), tokens=human_count(n),
                                  per=n / p) for p, n in zip(params, tokens)],
                    hovertemplate="%{hovertext}<br>%{customdata}<extra></extra>")
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=30, b=10), showlegend=True)
    fig.update_xaxes(title_text=t(lang, "sizing.viz.params_axis"), type="log")
    fig.update_yaxes(title_text=t(lang, "sizing.viz.tokens_axis"), type="log")
    return fig
