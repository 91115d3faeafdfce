"""What the SmolLM2 the app runs really is: the 4-bit GGUF release of SmolLM2-135M-Instruct, dequantized.

The package ships ``SmolLM2-135M-Instruct.Q4_1.gguf``, not the original 16-bit safetensors. transformers turns it
into float32 once (explorer.models.pretrained), so the app computes in float32 with the values the 4-bit file encodes:
each Q4_1 block of 32 weights holds 4-bit codes q with one scale d and one minimum m, w = d·q + m. The pages say
so with :func:`smollm2_weights`, whose numbers are read from the file itself.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class QuantizedWeights:
    file: str
    types: dict[str, int]  # GGML tensor type -> how many tensors of the file have it
    embedding_type: str  # the token embedding's type (it is also the tied output layer)
    bits: dict[str, float]  # bits per weight of each type, block scales and minimums included
    note: str  # the sentence the pages show


@lru_cache(maxsize=1)
def smollm2_weights() -> QuantizedWeights:
    from gguf import GGML_QUANT_SIZES, GGUFReader

    from .pretrained import smollm2_gguf

    path = smollm2_gguf()
    tensors = GGUFReader(str(path)).tensors  # reads the header only; the data stays memory-mapped
    kinds = {t.tensor_type for t in tensors}
    types = dict(Counter(t.tensor_type.name for t in tensors))
    bits = {k.name: 8 * GGML_QUANT_SIZES[k][1] / GGML_QUANT_SIZES[k][0] for k in kinds}
    embedding = next(t.tensor_type.name for t in tensors if t.name == "token_embd.weight")
    matrices = [k for k in types if k not in ("F32", "F16", embedding)]
    stored = "; ".join(f"{types[k]} layer matrices as {k} ({bits[k]:g} bits per weight: blocks of 32 weights, "
                       "each weight one of 16 levels between the block's own minimum and maximum)" for k in matrices)
    note = (f"SmolLM2-135M-Instruct runs from its 4-bit release ({path.name}), not from the original 16-bit weights: "
            f"{stored}; the token embedding, which is also the output layer, as {embedding} ({bits[embedding]:g} "
            f"bits); the {types.get('F32', 0)} norm vectors in float32. The app dequantizes them to float32 once and "
            "computes in float32, but every weight keeps its 4-bit rounding, so its probabilities can differ "
            "slightly from those of the original model.")
    return QuantizedWeights(path.name, types, embedding, bits, note)
