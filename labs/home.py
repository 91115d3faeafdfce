"""Home: what the app is and where each lab is."""
import streamlit as st

from explorer.presets import norm_placements
from explorer.ui.common import page_header
from explorer.ui.i18n import lang, tr
from explorer.ui.nav import LABS

page_header(tr("home.title"), tr("home.intro"))

st.subheader(tr("home.labs"))
for lab in LABS:
    with st.container(border=True):
        st.page_link(lab.path, label=lab.text(lang(), "title"), icon=lab.icon)
        st.markdown(lab.text(lang(), "blurb"))
        st.caption(tr("home.course_section", section=lab.text(lang(), "section")))

st.subheader(tr("home.layers_title"))
st.markdown(tr("home.layers_intro"))
placements = norm_placements()
listed = lambda key: tr("common.list_sep").join(placements[key])  # noqa: E731
post, pre = st.columns(2)
with post:
    st.markdown(tr("home.post_ln"))
    st.latex(r"x_{k+1} = \mathrm{LayerNorm}\big(x_k + F_k(x_k)\big)")
    st.caption(tr("home.post_ln_used", models=listed(("post", "layernorm"))))
with pre:
    st.markdown(tr("home.pre_ln"))
    st.latex(r"x_{k+1} = x_k + F_k\big(\mathrm{Norm}(x_k)\big),\qquad y = \mathrm{Norm}(x_{2N})")
    st.caption(tr("home.pre_ln_used", layernorm=listed(("pre", "layernorm")), rmsnorm=listed(("pre", "rmsnorm"))))
st.latex(r"\mathrm{Attention}(Q,K,V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V")
