"""Post-training lab: SFT, LoRA, the losses that compare a policy with a reference (CE, KL, DPO) and GRPO, one tab
open at a time."""
import streamlit as st

from explorer.labs.posttraining import PosttrainingSettings, run
from explorer.ui.common import page_header, show_outcome
from explorer.ui.i18n import say, tr
from explorer.ui.posttraining import LAB, VIEW
from explorer.ui.url_state import show_problems

page_header(tr("posttraining.title"), tr("posttraining.intro"), tr("posttraining.course_section"))
show_problems(VIEW.open())
shown = run(PosttrainingSettings(tab=LAB.choose()))
show_outcome(shown)
page = shown.result
st.caption(tr("posttraining.step_of", step=page.step, n=len(page.tabs), tab=LAB.tab_name(page.tab))
           + " " + say(page.summary))
LAB.show(page.tab)
