"""The reference for bench_labs.py: a page with one widget and nothing else, so that a rerun of it measures only
Streamlit's (and AppTest's) own cost."""
import streamlit as st

st.slider("value", 0, 100, 50, key="value")
