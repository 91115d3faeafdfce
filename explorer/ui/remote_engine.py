"""The generation lab's remote engine (explorer.serving.remote), when ``EXPLORER_ENGINE_URL`` names one: one
client per app process, and which models it generates for."""
from __future__ import annotations

import streamlit as st

from ..serving.remote import RemoteEngine, engine_url


@st.cache_resource(show_spinner=False)
def remote_engine() -> RemoteEngine | None:
    url = engine_url()
    return RemoteEngine(url) if url else None


def remote_for(model_name: str) -> RemoteEngine | None:
    """The engine that generates ``model_name``, or None when this process generates it itself: no engine is
    configured, or the engine serves other models. An engine that cannot be reached is still used, so the run
    says so, rather than every replica quietly decoding on its own CPU."""
    engine = remote_engine()
    if engine is None or engine.serves(model_name) is False:
        return None
    return engine
