"""Transformer Explorer: the router. Run with `make run` (see README.md)."""
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub: the weights ship as packages

import pandas  # noqa: F401,E402 -- imported once here: sessions importing it at once on a fresh server saw a
import plotly.express  # noqa: F401,E402 -- half-initialised module ("pandas has no attribute 'Series'")
import streamlit as st

from explorer.device import configure_process
from explorer.ui.common import show_device
from explorer.ui.i18n import tr
from explorer.ui.nav import LABS
from explorer.ui.shell import app_controls
from explorer.ui.url_state import write_address

# A file, not ":material/hub:": Streamlit fetches a material favicon from fonts.gstatic.com, and a classroom
# server may have no internet (tests/browser/test_classroom_browser.py checks every page's requests).
FAVICON = Path(__file__).parent / "assets" / "favicon.svg"

configure_process()  # threads and allocator, once per server process (a no-op on later reruns)

st.set_page_config(page_title="Transformer Explorer", page_icon=str(FAVICON), layout="wide")

app_controls()  # the language first: the menu below is written in it
home = st.Page("labs/home.py", title=tr("nav.home"), icon=":material/home:", default=True)
labs = [st.Page(lab.path, title=tr(f"nav.{lab.url_path}.title"), icon=lab.icon, url_path=lab.url_path) for lab in LABS]
page = st.navigation({tr("nav.app_title"): [home], tr("nav.labs"): labs})

with st.sidebar:
    show_device()

try:
    page.run()
finally:  # also after st.stop(): the language and presenter mode with the page's view, in one write
    write_address()
