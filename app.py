"""Transformer Explorer: the router. Run with `make run` (see README.md)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub: the weights ship as packages

import streamlit as st

from explorer.ui.common import show_device
from explorer.ui.nav import available_labs

st.set_page_config(page_title="Transformer Explorer", page_icon=":material/hub:", layout="wide")

home = st.Page("labs/home.py", title="Home", icon=":material/home:", default=True)
labs = [st.Page(lab.path, title=lab.title, icon=lab.icon, url_path=lab.url_path) for lab in available_labs()]
page = st.navigation({"Transformer Explorer": [home], "Labs": labs})

with st.sidebar:
    show_device()

page.run()
