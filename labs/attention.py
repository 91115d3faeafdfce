"""Attention lab: a sentence through one multi-head attention layer, step by step and head by head."""
import pandas as pd
import streamlit as st

from explorer.labs.attention import HEADS_PER_DK
from explorer.ui.attention import STEPS, VIEW, outcome, params, sidebar_settings, study
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.i18n import lang, tr
from explorer.ui.sentence import sentence_input
from explorer.ui.url_state import VIEWS_KEY, link_and_reset, show_problems
from explorer.viz.attention import (
    MAX_SHOWN_COLS, head_grid, matrix_figure, pair_figure, params_figure, shared_bound, sqrt_dk_figure,
    vectors_grid,
)

page_header(tr("attention.title"), tr("attention.intro"), tr("attention.course_section"))
show_problems(VIEW.open())
link_slot = st.sidebar.container()  # filled once the address holds this run's view

# ---- controls -------------------------------------------------------------------------------------------------
tokens = sentence_input(key=VIEW.key("sentence"))
shown = outcome(tokens, sidebar_settings())
VIEW.publish()
with link_slot:
    link_and_reset(VIEW)
# One container whether or not there is something to say: an error appearing above the charts would move every
# element below it to a new place in the page, and the browser would then draw every chart anew rather than
# update the ones that changed (n_head 4 -> 5 is an error for d_model 64, 5 -> 4 clears it).
with st.container():
    show_outcome(shown)


def step(title: str, formulas: list[str], note: str, fig, key: str, wide: bool = False) -> None:
    """One step: its title, formulas and note beside its chart; a pair of panels (``wide``) gets the page's whole
    width below them, so that each panel keeps the room one chart had in its column."""
    left, right = st.columns([2, 3], vertical_alignment="center")
    with left:
        st.subheader(title)
        for formula in formulas:
            st.latex(formula)
        if not wide:
            st.markdown(note)
    if wide:
        right.markdown(note)
        chart(fig, key)
    else:
        with right:
            chart(fig, key)


def cut_note(width: int) -> str:
    return tr("attention.steps.cut", shown=MAX_SHOWN_COLS, width=width) if width > MAX_SHOWN_COLS else ""


def words(key: str) -> str:
    """A word inside a formula: LaTeX \\text{...} in the page's language."""
    return r"\text{" + tr(key) + "}"


def walk_to(offset: int) -> None:
    """The ◀ / ▶ buttons' callback: the step before or after the chosen one (it runs before the rerun)."""
    at = STEPS.index(VIEW.value("step"))
    st.session_state[VIEW.key("step")] = STEPS[min(max(at + offset, 0), len(STEPS) - 1)]


def step_picker() -> str:
    """The step shown, one at a time (the browser draws one or two charts per change instead of ten), kept in
    the address as ``step``; every step stays one click away."""
    at = STEPS.index(VIEW.value("step"))
    # One row, each part as wide as its content: ten options in columns had the last one cut off at 1366 px
    # in Chinese; the options wrap onto a second line rather than scroll out of sight on a narrower screen.
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("◀", key=VIEW.key("_step_back"), help=tr("attention.steps_pick.previous"), disabled=at == 0,
                  on_click=walk_to, args=(-1,))
        chosen = st.segmented_control(tr("attention.steps_pick.label"), STEPS, required=True, key=VIEW.key("step"),
                                      format_func=lambda s: tr(f"attention.steps_pick.{s}"), wrap=True,
                                      help=tr("attention.steps_pick.help"), label_visibility="collapsed")
        st.button("▶", key=VIEW.key("_step_next"), help=tr("attention.steps_pick.next"),
                  disabled=at == len(STEPS) - 1, on_click=walk_to, args=(1,))
    if VIEW.texts() != st.session_state.get(VIEWS_KEY, {}).get(VIEW.lab):
        # A step picked reruns only the fragment: write the address, and rerun the page so that its "copy link"
        # holds the new step too (the charts already drawn are the same and stay as they are).
        VIEW.publish()
        st.rerun(scope="app")
    return chosen


def steps(tokens, settings, result, zoom: int) -> None:
    """The chosen one of the ten steps of the zoomed head, next to its formula."""
    labels, lg = result.tokens, lang()
    n_head, d_head, kind = result.n_head, result.d_head, result.kind
    h = zoom - 1
    kv = result.kv_head(h)
    st.header(tr("attention.steps.header", head=zoom))
    about, formula = st.columns([3, 2], vertical_alignment="center")
    about.markdown(tr("attention.steps.about"))
    formula.latex(r"\mathrm{head}_i = \mathrm{softmax}\!\left(\frac{Q_iK_i^\top}{\sqrt{d_k}} + M\right)V_i")
    chosen = step_picker()
    dims = lambda n: [f"d{i}" for i in range(n)]  # noqa: E731
    dimension, token = tr("attention.steps.dimension"), tr("attention.steps.token")
    # Steps 3, 4 and 6 share one colour scale: on scales of their own, Q Kᵀ and Q Kᵀ / √d_k looked identical.
    score_bound = shared_bound(result.QK[h], result.scaled[h])

    def qk():
        return matrix_figure(result.QK[h], labels, labels, title=tr("attention.steps.qk_figure"), bound=score_bound,
                             lang=lg)

    def scaled():
        return matrix_figure(result.scaled[h], labels, labels, bound=score_bound, lang=lg,
                             title=tr(f"attention.steps.{'scaled' if settings.scale else 'unscaled'}_figure"))

    def mask():
        return matrix_figure(result.M, labels, labels, title=tr("attention.steps.mask_figure"), kind="mask",
                             lang=lg)

    def masked():
        return matrix_figure(result.masked[h], labels, labels, title=tr("attention.steps.masked_figure"),
                             bound=score_bound, lang=lg)

    def pair(left, right):
        """A step beside the one before it, which it changes: one figure of two panels."""
        return pair_figure(left, right, tr("attention.steps_pick.pair", left=left.layout.title.text,
                                           right=right.layout.title.text))

    if chosen == "x":
        step(tr("attention.steps.x_title"),
             [r"X = \mathrm{Embedding}(" + words("attention.steps.tokens_tex") + r") + PE",
              r"X \in \mathbb{R}^{n \times d_{model}}"],
             tr("attention.steps.x_note", d_model=settings.d_model) + cut_note(settings.d_model),
             matrix_figure(result.X, dims(settings.d_model), labels, title="X", kind="vectors", x_title=dimension,
                           y_title=token, lang=lg), "X")
    elif chosen == "qkv":
        qkv_note = "" if kind == "MHA" else tr("attention.steps.qkv_shared", head=zoom, kv=kv + 1, kind=kind)
        step(tr("attention.steps.qkv_title"),
             [r"Q_i = X W_i^Q,\quad K_i = X W_i^K,\quad V_i = X W_i^V",
              r"W_i^Q, W_i^K \in \mathbb{R}^{d_{model} \times d_k},\quad W_i^V \in \mathbb{R}^{d_{model} \times d_v}"],
             tr("attention.steps.qkv_note", d_head=d_head) + qkv_note + cut_note(d_head),
             vectors_grid([result.Q[h], result.K[kv], result.V[kv]], labels,
                          [tr("attention.steps.q_panel", head=zoom), tr("attention.steps.k_panel", kv=kv + 1),
                           tr("attention.steps.v_panel", kv=kv + 1)], lang=lg), "QKV")
    elif chosen == "qk":
        step(tr("attention.steps.qk_title"), [r"S = Q_i K_i^\top"], tr("attention.steps.qk_note"), qk(), "QK")
    elif chosen == "scale":
        if settings.scale:
            scaled_note = tr("attention.steps.scale_note", d_head=d_head, sqrt=d_head ** 0.5)
        else:
            scaled_note = tr("attention.steps.scale_off_note")
        step(tr("attention.steps.scale_title"), [r"\frac{QK^\top}{\sqrt{d_k}}"], scaled_note, pair(qk(), scaled()),
             "scaled", wide=True)
    elif chosen == "mask":
        step(tr("attention.steps.mask_title"), [mask_formula(settings)],
             mask_note(settings, len(tokens)) + tr("attention.steps.mask_grey"), mask(), "M")
    elif chosen == "masked":
        step(tr("attention.steps.masked_title"), [mask_formula(settings), r"\frac{QK^\top}{\sqrt{d_k}} + M"],
             tr("attention.steps.masked_note"), pair(mask(), masked()), "masked", wide=True)
    elif chosen == "softmax":
        step(tr("attention.steps.softmax_title"), [r"A_{i,j} = \frac{e^{s_{i,j}}}{\sum_{j'} e^{s_{i,j'}}}"],
             tr("attention.steps.softmax_note"),
             matrix_figure(result.weights[h], labels, labels, title=tr("attention.steps.softmax_figure", head=zoom),
                           kind="weights", lang=lg), "softmax")
    elif chosen == "z":
        step(tr("attention.steps.z_title"), [r"\mathrm{head}_i = A\,V_i"],
             tr("attention.steps.z_note") + cut_note(d_head),
             matrix_figure(result.Z[h], dims(d_head), labels, title=tr("attention.steps.z_figure", head=zoom),
                           kind="vectors", x_title=dimension, y_title=token, lang=lg), "Z")
    elif chosen == "concat":
        step(tr("attention.steps.concat_title"), [r"\mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)"],
             tr("attention.steps.concat_note", n_head=n_head, d_head=d_head, columns=n_head * d_head)
             + cut_note(n_head * d_head),
             matrix_figure(result.concat, [f"h{i // d_head + 1}.{i % d_head}" for i in range(n_head * d_head)],
                           labels, title=tr("attention.steps.concat_figure"), kind="vectors",
                           x_title=tr("attention.steps.head_dimension"), y_title=token, lang=lg), "concat")
    else:
        step(tr("attention.steps.out_title"),
             [r"\mathrm{MultiHead} = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\,W^O",
              r"W^O \in \mathbb{R}^{h d_v \times d_{model}}"],
             tr("attention.steps.out_note", d_model=settings.d_model, head=zoom) + cut_note(settings.d_model),
             matrix_figure(result.output, dims(settings.d_model), labels, title=tr("attention.steps.out_figure"),
                           kind="vectors", x_title=dimension, y_title=token, lang=lg), "out")


def mask_formula(settings) -> str:
    otherwise = words("attention.mask_tex.otherwise")
    return {
        "none": r"M_{i,j} = 0 \quad \forall\, i, j",
        "causal": r"M_{i,j} = \begin{cases} 0, & j \le i \\ -\infty, & j > i \end{cases}",
        "padding": r"M_{i,j} = \begin{cases} 0, & j < n \\ -\infty, & j \ge n \;("
                   + words("attention.mask_tex.pad") + r") \end{cases}",
        "sliding_window": r"M_{i,j} = \begin{cases} 0, & i - w < j \le i \\ -\infty, & " + otherwise
                          + r" \end{cases}",
        "prefix": r"M_{i,j} = \begin{cases} 0, & j \le i \;" + words("attention.mask_tex.or")
                  + r"\; j < p \\ -\infty, & " + otherwise + r" \end{cases}",
    }[settings.mask]


def mask_note(settings, n_tokens: int) -> str:
    return tr(f"attention.mask_note.{settings.mask}", pad_len=settings.pad_len, n=n_tokens,
              before=settings.window - 1, window=settings.window, prefix_len=settings.prefix_len)


def why_sqrt_dk(tokens, settings, result) -> None:
    st.markdown(tr("attention.sqrt_dk.explain", heads=HEADS_PER_DK))
    st.latex(r"q_i, k_i\ " + words("attention.sqrt_dk.condition_tex") + r":\quad "
             r"\operatorname{Var}(q \cdot k) = d_k \;\Rightarrow\; "
             r"\operatorname{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = 1")
    chart(sqrt_dk_figure(study(tokens, settings), result.sharpness, lang=lang()), "sqrt_dk")


def parameters(settings, result) -> None:
    rows = params(settings.d_model, result.n_head, result.n_kv_head)
    st.latex(r"\underbrace{d_{model}\cdot h d_k}_{W^Q} + \underbrace{2\, d_{model}\cdot n_{kv} d_k}_{W^K,\,W^V} + "
             r"\underbrace{h d_v \cdot d_{model}}_{W^O} \;(+" + words("attention.params.biases_tex") + r"),\qquad "
             + words("attention.params.kv_cache_tex") + r" = 2 \cdot n_{kv} \cdot d_k \cdot "
             + words("attention.params.bytes_tex"))
    left, right = st.columns([3, 2])
    with left:
        st.dataframe(pd.DataFrame([{
            tr("attention.params.kind"): r.kind, "n_kv_head": r.n_kv_head, "W^Q": r.w_q, "W^K": r.w_k, "W^V": r.w_v,
            "W^O": r.w_o, tr("attention.params.total"): r.total,
            tr("attention.params.kv_cache"): tr("attention.params.bytes", n=r.kv_cache_bytes_per_token(2)),
            tr("attention.params.this_layer"): "◀" if r.n_kv_head == result.n_kv_head else "",
        } for r in rows]), hide_index=True)
        st.caption(tr("attention.params.caption"))
    with right:
        chart(params_figure(rows, lang=lang()), "params")


# Moving the zoom or opening a tab reruns only this part (st.fragment): the sidebar's layer is unchanged, and so
# are the charts that do not show the zoomed head.
@st.fragment
def heads(tokens, settings, result) -> None:
    n_head = result.n_head
    # ---- all heads: the first chart, on the first screen (no header of its own: its title says what it is) -----
    summary, zoom_box = st.columns([3, 2], vertical_alignment="center")
    summary.caption(tr("attention.summary", kind=result.kind, d_model=settings.d_model, n_head=n_head,
                       d_head=result.d_head, n_kv_head=result.n_kv_head))
    zoom = zoom_box.select_slider(tr("attention.grid.zoom"), options=list(range(1, n_head + 1)),
                                  key=VIEW.key(f"zoom_{n_head}")) if n_head > 1 else 1
    chart(head_grid(result.weights, result.tokens, kv_heads=[result.kv_head(i) for i in range(n_head)],
                    selected=zoom - 1, title=tr("attention.grid.title", n_head=n_head), lang=lang()), "grid")
    # Tabs that run only when open (on_change="rerun"): the step by step first; the √d_k study and the parameter
    # table one click away; in the steps, one step at a time (step_picker). The browser then draws two charts per
    # change (the grid and one step) instead of 12 and a table.
    step_tab, sqrt_tab, params_tab = st.tabs(
        [tr("attention.tabs.steps"), tr("attention.sqrt_dk.header"), tr("attention.params.header")],
        key=VIEW.key("section"), on_change="rerun")
    if step_tab.open:
        with step_tab:
            steps(tokens, settings, result, zoom)
    if sqrt_tab.open:
        with sqrt_tab:
            why_sqrt_dk(tokens, settings, result)
    if params_tab.open:
        with params_tab:
            parameters(settings, result)


heads(tokens, shown.settings, shown.result)
