"""Home: what the app is and where each lab is."""
import streamlit as st

from explorer.presets import norm_placements
from explorer.ui.common import page_header
from explorer.ui.nav import LABS

page_header(
    "Transformer Explorer",
    "An interactive companion to the course notes on Transformers and large language models. "
    "Every lab computes on the real tensors of a Transformer: move a slider, type a sentence, and watch "
    "attention, positions, model sizes and generation change.",
)

st.subheader("The labs")
for lab in LABS:
    with st.container(border=True):
        st.page_link(lab.path, label=lab.title, icon=lab.icon)
        st.markdown(lab.blurb)
        st.caption(f"Course section: {lab.section}")

st.subheader("How a Transformer is put together")
st.markdown(
    "Each layer wraps two sub-layers, attention then the FFN (three in the decoder of the original model, with "
    "cross-attention between them), in a residual connection and a normalisation. Below, k counts sub-layers, not "
    "layers: F₁ is layer 1's attention, F₂ its FFN, F₃ layer 2's attention, and so on; N layers make 2N sub-layers. "
    "Where the norm sits is the difference between the course's Transformer and today's LLMs:"
)
placements = norm_placements()
post, pre = st.columns(2)
with post:
    st.markdown("**Post-LN**: the norm after the residual sum")
    st.latex(r"x_{k+1} = \mathrm{LayerNorm}\big(x_k + F_k(x_k)\big)")
    st.caption("Used by " + ", ".join(placements[("post", "layernorm")]) + ". This is the course's "
               "LayerNorm(x + Sublayer(x)).")
with pre:
    st.markdown("**Pre-LN**: the norm inside each branch, the residual path left alone")
    st.latex(r"x_{k+1} = x_k + F_k\big(\mathrm{Norm}(x_k)\big),\qquad y = \mathrm{Norm}(x_{2N})")
    st.caption("Used by " + ", ".join(placements[("pre", "layernorm")]) + " (Norm = LayerNorm) and by "
               + ", ".join(placements[("pre", "rmsnorm")]) + " (Norm = RMSNorm): every LLM in this app is "
               "pre-norm, with one final norm after the last layer.")
st.latex(r"\mathrm{Attention}(Q,K,V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V")
