"""Positional-encoding lab: sinusoidal, learned, RoPE, ALiBi, and why attention needs positions at all."""
import streamlit as st

from explorer.config import POSITIONALS
from explorer.labs.positional import LAB_D_MODEL, LAB_N_HEAD
from explorer.positional_facts import GPT2_POSITION_INIT_STD, GPT2_TOKEN_INIT_STD
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.i18n import lang, say, tr
from explorer.ui.positional import VIEW, dims_picker, encoding_name, head_slider, outcome, patterns_for, \
    sidebar_settings
from explorer.ui.sentence import sentence_input
from explorer.ui.token_chips import token_chips
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.positional import (
    alibi_figure, encodings_figure, permutation_figure, rope_distance_figure, rope_rotation_figure,
    similarity_figure, slopes_figure, table_figure, waves_figure,
)

page_header(tr("positional.title"), tr("positional.intro"), tr("positional.course_section"))
show_problems(VIEW.open())
tokens = sentence_input(key=VIEW.key("sentence"))
labels = list(tokens.tokens)
shown = outcome(tokens, sidebar_settings())
show_outcome(shown)
used, result = shown.settings, shown.result
lg = lang()

if used.positional in ("sinusoidal", "learned"):
    sin, pos = result.sinusoidal, result.sinusoidal.positions

if used.positional == "sinusoidal":
    st.header(tr("positional.sin.header"))
    chart(table_figure(sin.table, pos, title=tr("positional.sin.table_title", n_pos=used.n_pos, d_model=used.d_model),
                       lang=lg), "sin_table")
    st.latex(r"PE_{(pos,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_{model}}}\right),\quad "
             r"PE_{(pos,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_{model}}}\right)")
    with st.expander(tr("positional.sin.more")):
        st.markdown(tr("positional.sin.explain") + " " + tr("positional.extrapolation"))
    dims = dims_picker(used.d_model)
    if dims:
        chart(waves_figure(sin.table, dims, pos, lg), "waves")
    else:
        st.caption(tr("positional.sin.no_dims"))
    st.markdown(tr("positional.sin.similarity"))
    st.latex(r"PE(p)\cdot PE(p') = \sum_i \cos\!\big((p-p')\,\omega_i\big),\quad \omega_i = 10000^{-2i/d_{model}}")
    chart(similarity_figure(sin.similarity, pos, title="cos(PE(p), PE(p'))", lang=lg), "sin_sim")

elif used.positional == "learned":
    st.header(tr("positional.learned.header"))
    learned = result.learned
    left, right = st.columns(2)
    with left:
        chart(table_figure(learned.table, pos, title=tr("positional.learned.table_title"), lang=lg), "learned_table")
        chart(similarity_figure(learned.similarity, pos, title=tr("positional.learned.sim_title"), lang=lg),
              "learned_sim")
    with right:
        chart(table_figure(sin.table, pos, title=tr("positional.learned.sin_table_title"), lang=lg), "sin_table")
        chart(similarity_figure(sin.similarity, pos, title=tr("positional.learned.sin_sim_title"), lang=lg),
              "sin_sim")
    st.latex(r"x_{pos} = \mathrm{Embedding}(\text{token}) + P_{pos},\quad P \in \mathbb{R}^{L_{max}\times d_{model}}")
    st.markdown(tr("positional.learned.explain", position_std=GPT2_POSITION_INIT_STD, token_std=GPT2_TOKEN_INIT_STD))

elif used.positional == "rope":
    st.header(tr("positional.rope.header"))
    rope = result.rope
    left, right = st.columns(2)
    with left:
        chart(rope_rotation_figure(rope.rotation, rope.positions, lg), "rope_rot")
        st.caption(tr("positional.rope.rotation_caption", theta=used.theta))
    with right:
        chart(rope_distance_figure(rope.curves, lg), "rope_dist")
        first = rope.curves[0]
        st.caption(tr("positional.rope.distance_caption", offset=first.offset, change=first.max_offset_change)
                   + " " + say(rope.decay.text))
    st.markdown(tr("positional.rope.explain"))
    st.latex(r"\begin{pmatrix} q'_{i} \\ q'_{i+d/2} \end{pmatrix} = "
             r"\begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}"
             r"\begin{pmatrix} q_{i} \\ q_{i+d/2} \end{pmatrix},\qquad \theta_i = \theta^{-2i/d}")
    st.latex(r"\langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle")

elif used.positional == "alibi":
    st.header(tr("positional.alibi.header"))
    ab = result.alibi
    st.caption(tr("positional.alibi.explain"))
    chart(alibi_figure(ab, labels, lg), "alibi")
    st.latex(r"\mathrm{softmax}\!\left(\frac{q_i K^\top}{\sqrt{d_k}} - m_h\,(i - j)\right),\qquad "
             r"m_h = 2^{-8h/n}\ \ (h = 1 \dots n,\ n = 2^k)")
    st.caption(say(ab.rule.text))
    chart(slopes_figure(ab, lg), "slopes")

else:
    st.header(tr("positional.none.header"))
    res = result.permutation
    if res is None:
        st.warning(tr("positional.none.one_token"))
    else:
        st.markdown(f"**{tr('positional.none.shuffled')}** " + token_chips(res.shuffled_labels))
        figure, verdict = st.empty(), st.columns([3, 1], vertical_alignment="center")
        with verdict[1]:  # drawn below the chart, read before it: the chart shows the head it picks
            head_shown = head_slider("perm_head")
        with figure.container():
            chart(permutation_figure(res, head_shown, lg), "perm")
        if res.max_abs_diff < 1e-4:  # float32 rounding of a 64-wide layer stays near 1e-7
            verdict[0].success(tr("positional.none.same", diff=res.max_abs_diff))
        else:
            verdict[0].warning(tr("positional.none.differ", encoding=encoding_name(used.perm_encoding),
                                  diff=res.max_abs_diff))
    with st.expander(tr("positional.none.more"), expanded=res is None):
        st.markdown(tr("positional.none.explain"))
        st.latex(r"\mathrm{Attention}(PX) = P\,\mathrm{Attention}(X)")
    st.caption(tr("positional.none.causal"))

# ---- effect on attention --------------------------------------------------------------------------------------
st.header(tr("positional.effect.header"))
st.markdown(tr("positional.effect.explain", d_model=LAB_D_MODEL, n_head=LAB_N_HEAD))
effect_head = head_slider("effect_head")
patterns = {e: patterns_for(e, used.seed, used.theta, tokens) for e in POSITIONALS}
chart(encodings_figure(patterns, labels, effect_head, lg), "effect")

VIEW.publish()
with st.sidebar:
    link_and_reset(VIEW)  # after publish: the link holds this run's view
