"""The reference the generation tests and bench compare against: transformers' own LlamaForCausalLM holding the
very weights ``explorer.models.pretrained.load_model("smollm2-135m")`` read (its ``source`` folder, written by transformers
from the packaged GGUF)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch


def hf_causal_lm(source: str | Path, attn_implementation: str = "eager", device: torch.device | str = "cpu"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True, dtype=torch.float32,
                                                 attn_implementation=attn_implementation)
    return model.to(device).eval()


def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
    """transformers' generate, greedy: the new token ids (ending with the EOS token when it stopped on one)."""
    ids = torch.tensor([prompt_ids], device=model.device)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                             eos_token_id=eos_token_id, pad_token_id=eos_token_id, top_k=None, top_p=None,
                             temperature=None)
    return out[0, len(prompt_ids):].tolist()
