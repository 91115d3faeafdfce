"""The sentence box of the toy labs: type, see the tokens and their ids, get a message instead of a traceback."""
from __future__ import annotations

import streamlit as st

from ..safe_text import escape_markdown
from .token_chips import token_chips
from ..models.toy_tokens import DEFAULT_SENTENCE, MAX_LAB_TOKENS, Tokens, tokenize_for_lab


def sentence_input(key: str = "sentence") -> Tokens:
    """A text box; shows the WordPiece tokens and ids. An empty or too long sentence shows why, then a fallback."""
    text = st.text_input("Sentence (English or Chinese)", DEFAULT_SENTENCE, key=key, max_chars=400)
    lab_input = tokenize_for_lab(text)
    if lab_input.error:
        st.error(escape_markdown(lab_input.error))
        if lab_input.fallback:
            st.warning(escape_markdown(lab_input.fallback))
    tokens = lab_input.tokens
    st.markdown("**Tokens:** " + token_chips(tokens.tokens))
    unknown = tokens.unknown_pieces()
    note = (f" WordPiece does not know {token_chips(unknown)} (all [UNK], one id); the lab still gives each its own "
            "embedding row." if unknown else "")
    st.caption(f"{len(tokens)} tokens (at most {MAX_LAB_TOKENS}) with ids "
               + " ".join(str(i) for i in tokens.ids) + ". BERT's WordPiece splits English into word pieces (##) "
               "and Chinese into characters." + note)
    return tokens
