"""Home: what the app is and where each lab is."""
import streamlit as st

from explorer.ui.common import page_header, show_device
from explorer.ui.nav import available_labs

page_header(
    "Transformer Explorer",
    "An interactive companion to the course notes on Transformers and large language models. "
    "Every lab computes on the real tensors of a Transformer: move a slider, type a sentence, and watch "
    "attention, positions, model sizes and generation change.",
)
show_device()

st.subheader("The labs")
labs = available_labs()
if not labs:
    st.info("No lab is installed yet.")
for lab in labs:
    with st.container(border=True):
        st.page_link(lab.path, label=lab.title, icon=lab.icon)
        st.markdown(lab.blurb)
        st.caption(f"Course section: {lab.section}")

st.subheader("How a Transformer is put together")
st.markdown(
    "Each layer wraps two sub-layers (three in the decoder of the original model) in a residual connection "
    "and a normalisation:"
)
st.latex(r"x_{l+1} = \mathrm{LayerNorm}\big(x_l + \mathrm{Sublayer}(x_l)\big)")
st.latex(r"\mathrm{Attention}(Q,K,V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V")
