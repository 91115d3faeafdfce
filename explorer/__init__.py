"""Transformer Explorer: a small library that builds Transformers and exposes every intermediate tensor.

Usable from a notebook; the Streamlit app lives in app.py, labs/ and explorer/ui/.
"""
from .config import PRESETS, ModelConfig
from .device import keep_freed_memory
from .model import HOOK_NAMES, KVCache, Transformer, hook_names

keep_freed_memory()  # cached forwards reuse freed buffers instead of page-faulting fresh ones (see device.py)

__all__ = ["ModelConfig", "PRESETS", "Transformer", "KVCache", "HOOK_NAMES", "hook_names"]
