"""Transformer Explorer: a small library that builds Transformers and exposes every intermediate tensor.

Usable from a notebook; the Streamlit app lives in app.py, labs/ and explorer/ui/.
Importing it changes nothing outside it (threads, allocator, random state): the app makes its process-wide
settings once at start, with explorer.device.configure_process.
"""
from .config import PRESETS, ModelConfig
from .model import HOOK_NAMES, KVCache, Transformer, hook_names

__all__ = ["ModelConfig", "PRESETS", "Transformer", "KVCache", "HOOK_NAMES", "hook_names"]
