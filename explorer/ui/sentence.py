"""The sentence box of the toy labs: type, see the tokens and their ids, get a message instead of a traceback."""
from __future__ import annotations

import streamlit as st

from ..models.toy_tokens import DEFAULT_SENTENCE, MAX_LAB_TOKENS, Tokens, tokenize_for_lab, tokenizer_facts
from ..safe_text import escape_markdown
from .i18n import say, tr
from .token_chips import token_chips


def sentence_input(key: str = "sentence") -> Tokens:
    """A text box; shows the tokens, their ids and which tokenizer made them. An empty or too long sentence shows
    why, then a fallback.

    A page that keeps the sentence in its link (explorer.ui.url_state) passes its ``VIEW.key("sentence")``: the
    state then holds the text, and the box takes no default of its own (Streamlit warns when both set it)."""
    default = {} if key in st.session_state else {"value": DEFAULT_SENTENCE}
    text = st.text_input(tr("tokens.box_label"), key=key, max_chars=400, **default)
    lab_input = tokenize_for_lab(text)
    if lab_input.error:
        st.error(escape_markdown(say(lab_input.error)))
        if lab_input.fallback:
            st.warning(escape_markdown(say(lab_input.fallback)))
    tokens = lab_input.tokens
    st.markdown(f"**{tr('tokens.chips')}** " + token_chips(tokens.tokens))
    st.caption(tr("tokens.caption", n=len(tokens), max=MAX_LAB_TOKENS, ids=" ".join(str(i) for i in tokens.ids))
               + " " + escape_markdown(say(tokenizer_facts())))
    return tokens
